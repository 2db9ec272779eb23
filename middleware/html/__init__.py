"""The rewriter's parts: ``grammar`` (what is a tag, the skip, text-state ends), ``attrs``
(attributes and how they fetch), ``fetch`` (URLs in CSS, meta refresh, srcset, data:).
``middleware.rewrite`` holds the tokenizer (``HtmlRewriter``) that uses them."""

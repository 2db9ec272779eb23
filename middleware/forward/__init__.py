"""Server-side forwarding: events to partners, only the fields consent allows, logged first.

``await forward(request, "purchase", {...})`` (see :mod:`.api`); the browser's way in is
``POST /.consent/collect`` (:mod:`.collect`). Kept import-light: ``config`` reads
``[partners.ID.forward]`` with :mod:`.spec`, which imports nothing above the Policy layer.
"""

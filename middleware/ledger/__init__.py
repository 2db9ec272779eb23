"""The disclosure ledger: records, hash chain, stores, the group-commit writer."""

from __future__ import annotations

from middleware.errors import LedgerUnavailable as LedgerUnavailable
from middleware.ledger.chain import BrokenRow as BrokenRow
from middleware.ledger.chain import Checkpoint as Checkpoint
from middleware.ledger.chain import Problem as Problem
from middleware.ledger.chain import StoredRow as StoredRow
from middleware.ledger.chain import VerifyReport as VerifyReport
from middleware.ledger.chain import verify as verify
from middleware.ledger.minimise import minimise_ip as minimise_ip
from middleware.ledger.minimise import ua_family as ua_family
from middleware.ledger.query import open_store as open_store
from middleware.ledger.records import ConsentAction as ConsentAction
from middleware.ledger.records import ConsentEvent as ConsentEvent
from middleware.ledger.records import ConsentSource as ConsentSource
from middleware.ledger.records import DisclosureRecord as DisclosureRecord
from middleware.ledger.records import LegalBasis as LegalBasis
from middleware.ledger.records import PageView as PageView
from middleware.ledger.records import PartnerShare as PartnerShare
from middleware.ledger.records import page_path as page_path
from middleware.ledger.retention import purge as purge
from middleware.ledger.service import ProcessWriter as ProcessWriter
from middleware.ledger.sqlite import SqliteStore as SqliteStore
from middleware.ledger.store import Filters as Filters
from middleware.ledger.store import LedgerStore as LedgerStore
from middleware.ledger.writer import LedgerWriter as LedgerWriter
from middleware.ledger.writer import RecordWriter as RecordWriter

__all__ = [
    "BrokenRow",
    "Checkpoint",
    "ConsentAction",
    "ConsentEvent",
    "ConsentSource",
    "DisclosureRecord",
    "Filters",
    "LedgerStore",
    "LedgerUnavailable",
    "LedgerWriter",
    "LegalBasis",
    "PageView",
    "PartnerShare",
    "Problem",
    "ProcessWriter",
    "RecordWriter",
    "SqliteStore",
    "StoredRow",
    "VerifyReport",
    "minimise_ip",
    "open_store",
    "page_path",
    "purge",
    "ua_family",
    "verify",
]

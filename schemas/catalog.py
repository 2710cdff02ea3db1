"""The practice-database catalog: every data set of the Recurring Data Snapshots
document (plus what Data Sync needs) as a table, with the metadata of docs/contracts.md
contract 2.

Decisions written down here:

* Every tenant table has a surrogate ``id BIGINT UNSIGNED AUTO_INCREMENT`` primary key
  and ``customer_id`` (indexed, foreign key to ``customer``). Ids are unique across
  customers; Data Sync therefore matches items by ``natural_key``, which is unique
  per customer (a UNIQUE KEY ``(customer_id, natural key)``).
* Fee schedules are one row per (schedule, procedure code, modifier): the natural key
  needs no parent surrogate id, so an item can be matched in another customer.
* ``never_copied`` columns are kept by the target on sync (procedure-code situational
  modifiers, payer billing options).
* Packages (snapshots) create tables without foreign keys (``ddl(with_foreign_keys=False)``):
  a data set loads on its own, in any order, as BI tools expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SyncCategory = Literal["codes", "facilities", "referring_providers", "payers"]


@dataclass(frozen=True)
class CategoryInfo:
    """One Data Sync category: its name in the CLI and the page, and the product document's words."""

    name: SyncCategory
    cli: str
    label: str
    description: str


#: The Data Sync categories, the one table of them (the catalog says which data sets each holds).
CATEGORY_INFO: tuple[CategoryInfo, ...] = (
    CategoryInfo("codes", "codes", "Codes", "Procedure, Diagnosis, ICD Procedure, Revenue, Remittance and "
                 "Adjustment codes, and Fee Schedules. Existing situational modifiers are not copied to procedure codes."),
    CategoryInfo("facilities", "facilities", "Facilities", "Any updates to the Facility section."),
    CategoryInfo("referring_providers", "referring-providers", "Referring Providers",
                 "Any updates to the Referring Providers section."),
    CategoryInfo("payers", "payers", "Payers",
                 "Any updates to the Payers section. Existing Payer Billing Options are not copied to payers."),
)
SYNC_CATEGORIES: tuple[SyncCategory, ...] = tuple(c.name for c in CATEGORY_INFO)
#: What to say when a category name is unknown.
CATEGORY_HINT = "use " + ", ".join(c.cli for c in CATEGORY_INFO[:-1]) + f" or {CATEGORY_INFO[-1].cli}"


@dataclass(frozen=True)
class Column:
    """One column: name, MySQL type and nullability."""

    name: str
    type: str
    nullable: bool = True
    auto_increment: bool = False

    def ddl(self) -> str:
        null = "NULL" if self.nullable else "NOT NULL"
        ai = " AUTO_INCREMENT" if self.auto_increment else ""
        return f"`{self.name}` {self.type} {null}{ai}"


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` reference ``ref_table(ref_columns)``."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...] = ("id",)


@dataclass(frozen=True)
class DataSet:
    """A data set of the snapshot product, stored as one table.

    Attributes:
        name: as the product document spells it.
        table: table name in the practice database.
        columns: in table order.
        primary_key: primary-key columns.
        tenant_column: the customer column (``customer_id``), or None for shared tables.
        incremental: True when an incremental snapshot carries only the changed rows.
        sync_category: the Data Sync category, or None when never synced.
        natural_key: columns that identify an item within a customer (sync matching).
        never_copied: columns Data Sync never copies into a target.
        foreign_keys: referential constraints of the practice database.
        indexes: extra secondary indexes (column tuples).
        description: what the data set holds.
    """

    name: str
    table: str
    columns: tuple[Column, ...]
    description: str
    primary_key: tuple[str, ...] = ("id",)
    tenant_column: str | None = "customer_id"
    incremental: bool = False
    sync_category: SyncCategory | None = None
    natural_key: tuple[str, ...] = ()
    never_copied: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def sync_columns(self) -> tuple[str, ...]:
        """The columns Data Sync copies: all but the id, the tenant column and the never-copied ones."""
        skip = {"id", self.tenant_column, *self.never_copied}
        return tuple(c for c in self.column_names if c not in skip)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.table} has no column {name!r}")

    def added_columns_ddl(self) -> str:
        """For a live data set with columns the catalog's lacks (the source added them): per
        such column, statements that add it to an existing table that lacks it (MySQL and
        MariaDB alike: ``ADD COLUMN IF NOT EXISTS`` is MariaDB's only), so yesterday's tables
        take today's rows. Empty for a data set as the catalog has it."""
        known = {c.name for c in _BY_TABLE[self.table].columns}
        out = []
        for c in self.columns:
            if c.name in known:
                continue
            alter = f"ALTER TABLE `{self.table}` ADD COLUMN {c.ddl().replace(' AUTO_INCREMENT', '')}"
            out.append(f"SET @snapsync_ddl = (SELECT IF(COUNT(*) = 0, '{alter.replace(chr(39), chr(39) * 2)}', 'DO 0') "
                       "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                       f"AND TABLE_NAME = '{self.table}' AND COLUMN_NAME = '{c.name}');\n"
                       "PREPARE snapsync_ddl FROM @snapsync_ddl;\nEXECUTE snapsync_ddl;\n"
                       "DEALLOCATE PREPARE snapsync_ddl;\n")
        return "".join(out)

    def ddl(self, *, with_foreign_keys: bool = True, if_not_exists: bool = False) -> str:
        """CREATE TABLE statement (InnoDB, utf8mb4)."""
        lines = [c.ddl() for c in self.columns]
        lines.append("PRIMARY KEY (" + ", ".join(f"`{c}`" for c in self.primary_key) + ")")
        if self.natural_key and self.tenant_column:
            cols = (self.tenant_column, *self.natural_key)
            lines.append("UNIQUE KEY `uk_natural` (" + ", ".join(f"`{c}`" for c in cols) + ")")
        elif self.tenant_column:
            lines.append(f"KEY `ix_{self.tenant_column}` (`{self.tenant_column}`)")
        for i, idx in enumerate(self.indexes):
            lines.append(f"KEY `ix_{i}_{'_'.join(idx)}`"[:64] + " (" + ", ".join(f"`{c}`" for c in idx) + ")")
        if with_foreign_keys:
            for i, fk in enumerate(self.foreign_keys):
                lines.append(
                    f"CONSTRAINT `fk_{self.table}_{i}` FOREIGN KEY ("
                    + ", ".join(f"`{c}`" for c in fk.columns)
                    + f") REFERENCES `{fk.ref_table}` ("
                    + ", ".join(f"`{c}`" for c in fk.ref_columns)
                    + ")"
                )
        ine = "IF NOT EXISTS " if if_not_exists else ""
        body = ",\n  ".join(lines)
        return (
            f"CREATE TABLE {ine}`{self.table}` (\n  {body}\n) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )

    def typed_columns(self) -> list[dict]:
        """The typed schema a package manifest carries: per column its name, MySQL type,
        nullability and whether it is in the primary key."""
        pk = set(self.primary_key)
        return [{"name": c.name, "type": c.type, "nullable": c.nullable, "primary_key": c.name in pk}
                for c in self.columns]

    def to_json(self) -> dict:
        """The catalog entry as printed by ``snapsync catalog --json``."""
        return {
            "name": self.name,
            "table": self.table,
            "description": self.description,
            "primary_key": list(self.primary_key),
            "tenant_column": self.tenant_column,
            "incremental": self.incremental,
            "sync_category": self.sync_category,
            "natural_key": list(self.natural_key),
            "never_copied": list(self.never_copied),
            "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable} for c in self.columns],
            "foreign_keys": [
                {"columns": list(f.columns), "references": f"{f.ref_table}({', '.join(f.ref_columns)})"}
                for f in self.foreign_keys
            ],
        }


# --- column shorthands ----------------------------------------------------------------
def _id() -> Column:
    return Column("id", "BIGINT UNSIGNED", nullable=False, auto_increment=True)


def _cust() -> Column:
    return Column("customer_id", "INT UNSIGNED", nullable=False)


def _ref(name: str, nullable: bool = False) -> Column:
    return Column(name, "BIGINT UNSIGNED", nullable=nullable)


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


def _stamps() -> tuple[Column, ...]:
    return (
        Column("created_at", "DATETIME(6)", nullable=False),
        Column("updated_at", "DATETIME(6)", nullable=False),
    )


_CUST_FK = ForeignKey(("customer_id",), "customer", ("customer_id",))


def _fk(col: str, table: str) -> ForeignKey:
    return ForeignKey((col,), table)


MONEY = "DECIMAL(12,2)"

# --- tenancy (not data sets: who owns what) --------------------------------------------
TENANCY_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS `account` (
  `account_id` INT UNSIGNED NOT NULL,
  `name` VARCHAR(120) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE IF NOT EXISTS `customer` (
  `customer_id` INT UNSIGNED NOT NULL,
  `account_id` INT UNSIGNED NOT NULL,
  `name` VARCHAR(120) NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`customer_id`),
  KEY `ix_account` (`account_id`),
  CONSTRAINT `fk_customer_account` FOREIGN KEY (`account_id`) REFERENCES `account` (`account_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
)

_ADDRESS = (
    _c("address1", "VARCHAR(100)"),
    _c("address2", "VARCHAR(100)"),
    _c("city", "VARCHAR(60)"),
    _c("state", "CHAR(2)"),
    _c("zip", "VARCHAR(10)"),
    _c("phone", "VARCHAR(20)"),
)

_CLAIM_COMMON = (
    _id(),
    _cust(),
    _ref("patient_id"),
    _ref("payor_id", nullable=True),
    _ref("rendering_provider_id", nullable=True),
    _ref("billing_provider_id", nullable=True),
    _ref("facility_id", nullable=True),
    _c("claim_number", "VARCHAR(30)", False),
    _c("status", "VARCHAR(20)", False),
    _c("from_date", "DATE", False),
    _c("to_date", "DATE"),
    _c("total_charge", MONEY, False),
    _c("balance", MONEY, False),
    _c("submitted_at", "DATETIME(6)"),
)

DATASETS: tuple[DataSet, ...] = (
    DataSet(
        "Practice", "practice",
        (_id(), _cust(), _c("name", "VARCHAR(120)", False), _c("tax_id", "CHAR(9)"),
         _c("npi", "CHAR(10)"), *_ADDRESS, _c("timezone", "VARCHAR(40)", False), *_stamps()),
        "The practice (one per customer): legal name, tax id, group NPI, address.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Provider", "provider",
        (_id(), _cust(), _c("first_name", "VARCHAR(60)", False), _c("last_name", "VARCHAR(60)", False),
         _c("credentials", "VARCHAR(20)"), _c("npi", "CHAR(10)", False), _c("taxonomy", "VARCHAR(10)"),
         _c("provider_type", "ENUM('rendering','billing','attending','supervising')", False),
         _c("active", "TINYINT(1)", False), *_stamps()),
        "Rendering, attending and billing providers (never synced).",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Facility", "facility",
        (_id(), _cust(), _c("facility_code", "VARCHAR(20)", False), _c("name", "VARCHAR(120)", False),
         _c("npi", "CHAR(10)"), _c("pos_code", "CHAR(2)", False), *_ADDRESS, _c("active", "TINYINT(1)", False),
         *_stamps()),
        "Service facilities (place of service).",
        sync_category="facilities", natural_key=("facility_code",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Location", "location",
        (_id(), _cust(), _c("name", "VARCHAR(120)", False), *_ADDRESS, _c("active", "TINYINT(1)", False),
         *_stamps()),
        "Office locations of the practice.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Referring", "referring_provider",
        (_id(), _cust(), _c("npi", "CHAR(10)", False), _c("first_name", "VARCHAR(60)", False),
         _c("last_name", "VARCHAR(60)", False), _c("credentials", "VARCHAR(20)"),
         _c("taxonomy", "VARCHAR(10)"), *_ADDRESS, _c("notes", "TEXT"), *_stamps()),
        "Referring providers.",
        sync_category="referring_providers", natural_key=("npi",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Payor", "payor",
        (_id(), _cust(), _c("payer_code", "VARCHAR(20)", False), _c("name", "VARCHAR(120)", False),
         _c("payer_type", "VARCHAR(20)", False), *_ADDRESS, _c("claim_format", "VARCHAR(10)", False),
         _c("billing_options", "TEXT"), _c("active", "TINYINT(1)", False), *_stamps()),
        "Insurance payers. billing_options (payer billing options) is never copied by sync.",
        sync_category="payers", natural_key=("payer_code",), never_copied=("billing_options",),
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "CPT Code", "cpt_code",
        (_id(), _cust(), _c("code", "VARCHAR(10)", False), _c("description", "VARCHAR(255)", False),
         _c("default_charge", MONEY, False), _c("default_units", "DECIMAL(8,3)", False),
         _c("situational_modifiers", "VARCHAR(60)"), _c("revenue_code", "CHAR(4)"),
         _c("active", "TINYINT(1)", False), *_stamps()),
        "Procedure (CPT/HCPCS) codes. situational_modifiers is never copied by sync.",
        sync_category="codes", natural_key=("code",), never_copied=("situational_modifiers",),
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "ICD Code", "icd_code",
        (_id(), _cust(), _c("code", "VARCHAR(10)", False), _c("description", "VARCHAR(255)", False),
         _c("icd_version", "TINYINT UNSIGNED", False), _c("active", "TINYINT(1)", False), *_stamps()),
        "Diagnosis (ICD-10-CM) codes.",
        sync_category="codes", natural_key=("code",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "ICD Procedure Codes", "icd_procedure_code",
        (_id(), _cust(), _c("code", "VARCHAR(10)", False), _c("description", "VARCHAR(255)", False),
         _c("active", "TINYINT(1)", False), *_stamps()),
        "ICD-10-PCS procedure codes.",
        sync_category="codes", natural_key=("code",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Revenue Codes", "revenue_code",
        (_id(), _cust(), _c("code", "CHAR(4)", False), _c("description", "VARCHAR(255)", False),
         _c("default_charge", MONEY), _c("active", "TINYINT(1)", False), *_stamps()),
        "UB-04 revenue codes.",
        sync_category="codes", natural_key=("code",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Remittance Codes", "remittance_code",
        (_id(), _cust(), _c("code", "VARCHAR(10)", False), _c("code_type", "VARCHAR(10)", False),
         _c("description", "TEXT", False), _c("active", "TINYINT(1)", False), *_stamps()),
        "Remittance (CARC/RARC) codes (Data Sync 'codes').",
        sync_category="codes", natural_key=("code_type", "code"), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Adjustment Codes", "adjustment_code",
        (_id(), _cust(), _c("code", "VARCHAR(10)", False), _c("description", "VARCHAR(255)", False),
         _c("adjustment_type", "VARCHAR(20)", False), _c("active", "TINYINT(1)", False), *_stamps()),
        "Adjustment codes (Data Sync 'codes').",
        sync_category="codes", natural_key=("code",), foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Fee Schedules", "fee_schedule",
        (_id(), _cust(), _c("schedule_name", "VARCHAR(60)", False), _c("procedure_code", "VARCHAR(10)", False),
         _c("modifier", "VARCHAR(2)", False), _c("amount", MONEY, False), _c("allowed_amount", MONEY),
         _c("effective_date", "DATE", False), *_stamps()),
        "Fee schedules, one row per schedule, procedure code and modifier ('' for none).",
        sync_category="codes", natural_key=("schedule_name", "procedure_code", "modifier"),
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Inventory Codes", "inventory_code",
        (_id(), _cust(), _c("code", "VARCHAR(20)", False), _c("description", "VARCHAR(255)", False),
         _c("unit_cost", "DECIMAL(10,4)", False), _c("quantity_on_hand", "INT", False), *_stamps()),
        "Inventory (supply) codes.",
        foreign_keys=(_CUST_FK,), indexes=(("code",),),
    ),
    DataSet(
        "Patient", "patient",
        (_id(), _cust(), _c("account_number", "VARCHAR(20)", False), _c("first_name", "VARCHAR(60)", False),
         _c("middle_name", "VARCHAR(60)"), _c("last_name", "VARCHAR(60)", False), _c("date_of_birth", "DATE", False),
         _c("sex", "CHAR(1)", False), _c("ssn", "CHAR(9)"), *_ADDRESS, _c("email", "VARCHAR(120)"),
         _c("balance", MONEY, False), _c("notes", "TEXT"), *_stamps()),
        "Patient demographics.",
        incremental=True, foreign_keys=(_CUST_FK,), indexes=(("last_name", "first_name"),),
    ),
    DataSet(
        "Patient Notes", "patient_note",
        (_id(), _cust(), _ref("patient_id"), _c("note_date", "DATETIME(6)", False), _c("author", "VARCHAR(60)", False),
         _c("body", "TEXT", False), *_stamps()),
        "Free-text notes on a patient (never synced).",
        foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Insurance Parties", "insurance_party",
        (_id(), _cust(), _ref("patient_id"), _c("relationship", "VARCHAR(10)", False),
         _c("first_name", "VARCHAR(60)", False), _c("last_name", "VARCHAR(60)", False),
         _c("date_of_birth", "DATE"), *_ADDRESS, *_stamps()),
        "Insured parties (subscribers) of a patient's policies.",
        foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Insurance Policies", "insurance_policy",
        (_id(), _cust(), _ref("patient_id"), _ref("payor_id"), _ref("insurance_party_id", True),
         _c("sequence", "TINYINT UNSIGNED", False), _c("member_id", "VARCHAR(30)", False), _c("group_number", "VARCHAR(30)"),
         _c("copay", MONEY), _c("effective_date", "DATE", False), _c("termination_date", "DATE"), *_stamps()),
        "A patient's insurance policies (primary, secondary, ...).",
        foreign_keys=(_CUST_FK, _fk("patient_id", "patient"), _fk("payor_id", "payor")),
    ),
    DataSet(
        "Authorizations", "authorizations",
        (_id(), _cust(), _ref("patient_id"), _ref("payor_id", True), _c("auth_number", "VARCHAR(30)", False),
         _c("visits_authorized", "SMALLINT UNSIGNED"), _c("visits_used", "SMALLINT UNSIGNED", False),
         _c("start_date", "DATE", False), _c("end_date", "DATE"), _c("notes", "TEXT"), *_stamps()),
        "Prior authorizations.",
        foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Appt Types", "appt_type",
        (_id(), _cust(), _c("name", "VARCHAR(60)", False), _c("duration_minutes", "SMALLINT UNSIGNED", False),
         _c("color", "CHAR(7)"), *_stamps()),
        "Appointment types.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Resources", "resource",
        (_id(), _cust(), _c("name", "VARCHAR(60)", False), _c("resource_type", "VARCHAR(20)", False),
         _c("active", "TINYINT(1)", False), *_stamps()),
        "Schedulable resources (rooms, equipment).",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Appt", "appt",
        (_id(), _cust(), _ref("patient_id"), _ref("provider_id", True), _ref("appt_type_id", True),
         _ref("resource_id", True), _ref("location_id", True), _c("starts_at", "DATETIME(6)", False),
         _c("ends_at", "DATETIME(6)", False), _c("status", "VARCHAR(20)", False), _c("reason", "VARCHAR(255)"),
         *_stamps()),
        "Appointments (pending information, never synced).",
        foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Professional Claims", "claim_professional",
        (*_CLAIM_COMMON, _ref("referring_provider_id", True), _c("place_of_service", "CHAR(2)"), *_stamps()),
        "Professional (CMS-1500 / 837P) claims.",
        incremental=True, foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Institutional Claims", "claim_institutional",
        (*_CLAIM_COMMON, _c("type_of_bill", "CHAR(4)", False), _c("admission_date", "DATETIME(6)"),
         _c("discharge_date", "DATETIME(6)"), _c("drg_code", "VARCHAR(4)"), *_stamps()),
        "Institutional (UB-04 / 837I) claims.",
        incremental=True, foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
    ),
    DataSet(
        "Claim Status", "claim_status",
        (_id(), _cust(), _ref("claim_id"), _c("claim_kind", "CHAR(1)", False), _c("status_code", "VARCHAR(10)", False),
         _c("status_text", "VARCHAR(255)"), _c("status_at", "DATETIME(6)", False), *_stamps()),
        "Claim status history (277 responses and internal changes). claim_kind P or I.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Claim ICD Codes", "claim_icd_code",
        (_id(), _cust(), _ref("claim_id"), _c("claim_kind", "CHAR(1)", False), _c("sequence", "TINYINT UNSIGNED", False),
         _c("icd_code", "VARCHAR(10)", False), *_stamps()),
        "Diagnosis codes on a claim, in order.",
        foreign_keys=(_CUST_FK,), indexes=(("claim_id",),),
    ),
    DataSet(
        "Charge", "charge",
        (_id(), _cust(), _ref("patient_id"), _ref("claim_id", True), _c("claim_kind", "CHAR(1)"),
         _ref("provider_id", True), _c("service_date", "DATE", False), _c("procedure_code", "VARCHAR(10)", False),
         _c("modifiers", "VARCHAR(11)"), _c("units", "DECIMAL(8,3)", False), _c("amount", MONEY, False),
         _c("balance", MONEY, False), _c("icd_pointers", "VARCHAR(8)"), _c("posted_at", "DATETIME(6)", False),
         *_stamps()),
        "Charges (service lines).",
        incremental=True, foreign_keys=(_CUST_FK, _fk("patient_id", "patient")),
        indexes=(("patient_id",),),
    ),
    DataSet(
        "Insurance Check", "insurance_check",
        (_id(), _cust(), _ref("payor_id", True), _c("check_number", "VARCHAR(30)", False), _c("check_date", "DATE", False),
         _c("amount", MONEY, False), _c("eft", "TINYINT(1)", False), _c("deposited_at", "DATETIME(6)"), *_stamps()),
        "Insurance checks and EFTs received.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Payments", "payment",
        (_id(), _cust(), _ref("patient_id", True), _ref("insurance_check_id", True),
         _c("payment_type", "VARCHAR(20)", False), _c("amount", MONEY, False), _c("unapplied", MONEY, False),
         _c("received_at", "DATETIME(6)", False), _c("reference", "VARCHAR(60)"), *_stamps()),
        "Payments received (patient and insurance).",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Credit", "credit",
        (_id(), _cust(), _ref("charge_id"), _ref("payment_id", True), _c("credit_type", "VARCHAR(20)", False),
         _c("adjustment_code", "VARCHAR(10)"), _c("amount", MONEY, False), _c("posted_at", "DATETIME(6)", False),
         *_stamps()),
        "Credits applied to charges: payments, adjustments, write-offs.",
        incremental=True, foreign_keys=(_CUST_FK,), indexes=(("charge_id",),),
    ),
    DataSet(
        "Remittance", "remittance",
        (_id(), _cust(), _ref("insurance_check_id", True), _ref("claim_id", True), _c("claim_kind", "CHAR(1)"),
         _c("payer_claim_number", "VARCHAR(30)"), _c("paid_amount", MONEY, False), _c("patient_responsibility", MONEY, False),
         _c("reason_codes", "VARCHAR(60)"), _c("received_at", "DATETIME(6)", False), *_stamps()),
        "Electronic remittance (835) claim payments.",
        foreign_keys=(_CUST_FK,),
    ),
    DataSet(
        "Activity", "activity",
        (_id(), _cust(), _c("entity", "VARCHAR(30)", False), _ref("entity_id", True), _c("action", "VARCHAR(20)", False),
         _c("username", "VARCHAR(60)", False), _c("detail", "TEXT"), _c("occurred_at", "DATETIME(6)", False),
         *_stamps()),
        "The activity log: who did what, when.",
        incremental=True, foreign_keys=(_CUST_FK,),
    ),
)

_BY_TABLE = {d.table: d for d in DATASETS}
_BY_NAME = {d.name.lower(): d for d in DATASETS}

#: Creation order that satisfies the foreign keys.
TABLE_ORDER: tuple[str, ...] = tuple(d.table for d in DATASETS)


def dataset(table_or_name: str) -> DataSet:
    """Look a data set up by table name or by its document name (case-insensitive).

    Raises:
        KeyError: naming the known tables.
    """
    found = _BY_TABLE.get(table_or_name) or _BY_NAME.get(table_or_name.lower())
    if found is None:
        raise KeyError(f"unknown data set {table_or_name!r}; known: {', '.join(sorted(_BY_TABLE))}")
    return found


def incremental_datasets() -> tuple[DataSet, ...]:
    return tuple(d for d in DATASETS if d.incremental)


def sync_datasets(category: SyncCategory | None = None) -> tuple[DataSet, ...]:
    """Data sets that Data Sync copies (of one category, or all)."""
    return tuple(d for d in DATASETS if d.sync_category and (category is None or d.sync_category == category))


def schema_ddl(*, with_foreign_keys: bool = True) -> list[str]:
    """Every CREATE TABLE of the practice database, in dependency order."""
    return [*TENANCY_DDL, *(d.ddl(with_foreign_keys=with_foreign_keys) for d in DATASETS)]

from snapsync.schemas.catalog import DATASETS, dataset, incremental_datasets, schema_ddl, sync_datasets

DOCUMENT_NAMES = [
    "Authorizations", "Activity", "Appt", "Appt Types", "Charge", "Professional Claims", "Claim Status",
    "CPT Code", "Credit", "Facility", "ICD Code", "Location", "Patient", "Patient Notes", "Payor", "Practice",
    "Provider", "Referring", "Remittance", "Resources", "Claim ICD Codes", "ICD Procedure Codes",
    "Institutional Claims", "Insurance Parties", "Insurance Policies", "Payments", "Insurance Check",
    "Inventory Codes", "Revenue Codes",
]


def test_every_document_data_set_is_in_the_catalog():
    names = {d.name for d in DATASETS}
    assert set(DOCUMENT_NAMES) <= names
    # plus what Data Sync needs
    assert {"Fee Schedules", "Remittance Codes", "Adjustment Codes"} <= names


def test_incremental_are_exactly_the_five_document_tables():
    assert {d.table for d in incremental_datasets()} == {
        "patient", "claim_professional", "claim_institutional", "charge", "credit", "activity"}


def test_sync_categories_and_never_copied():
    codes = {d.table for d in sync_datasets("codes")}
    assert codes == {"cpt_code", "icd_code", "icd_procedure_code", "revenue_code", "remittance_code",
                     "adjustment_code", "fee_schedule"}
    assert {d.table for d in sync_datasets("facilities")} == {"facility"}
    assert {d.table for d in sync_datasets("referring_providers")} == {"referring_provider"}
    assert {d.table for d in sync_datasets("payers")} == {"payor"}
    assert dataset("cpt_code").never_copied == ("situational_modifiers",)
    assert dataset("payor").never_copied == ("billing_options",)
    for excluded in ("provider", "claim_professional", "claim_institutional", "charge", "credit", "payment",
                     "appt", "patient_note", "patient"):
        assert dataset(excluded).sync_category is None


def test_every_table_is_tenant_scoped_with_metadata():
    for d in DATASETS:
        assert d.tenant_column == "customer_id"
        assert d.primary_key == ("id",)
        assert d.column_names[:2] == ("id", "customer_id")
        for col in (*d.natural_key, *d.never_copied, *d.primary_key):
            d.column(col)  # raises when missing
        if d.sync_category:
            assert d.natural_key, d.table
        j = d.to_json()
        for key in ("name", "table", "primary_key", "tenant_column", "incremental", "sync_category",
                    "natural_key", "never_copied"):
            assert key in j


def test_real_billing_types_are_used():
    types = {c.type for d in DATASETS for c in d.columns}
    assert {"DECIMAL(12,2)", "DATE", "DATETIME(6)", "TEXT", "TINYINT(1)"} <= types
    assert any(c.nullable for d in DATASETS for c in d.columns)


def test_ddl_references_only_earlier_tables():
    seen = {"account", "customer"}
    for d in DATASETS:
        for fk in d.foreign_keys:
            assert fk.ref_table in seen, (d.table, fk.ref_table)
        seen.add(d.table)
    assert len(schema_ddl()) == len(DATASETS) + 2
    assert "FOREIGN KEY" not in dataset("charge").ddl(with_foreign_keys=False)


def test_lookup_by_document_name():
    assert dataset("Professional Claims").table == "claim_professional"
    assert dataset("referring").table == "referring_provider"

-- The tax split's inputs that are not point3's: the businesses declared in the settings file
-- (POINT3_BUSINESSES), a person's per-payment classifications, and the labels of the classes
-- and payment methods.

-- One row per (declared business, clientNickname), replaced from the file at each refresh.
CREATE TABLE business_declarations (
    business_id VARCHAR NOT NULL,
    business_name VARCHAR NOT NULL,
    registration_number VARCHAR NOT NULL,   -- 사업자등록번호, 10 digits, checksum validated
    taxpayer_type VARCHAR NOT NULL,         -- 일반과세자 | 간이과세자 | 면세사업자
    sales_taxation VARCHAR NOT NULL,        -- all_taxable | all_exempt | by_vat
    client_nickname VARCHAR NOT NULL,
    client_identification VARCHAR,          -- NULL: any clientIdentification
    loaded_at TIMESTAMPTZ NOT NULL
);

-- Append-only: a person's classify and unclassify actions, keyed by signature (not by the
-- record's content), so they survive re-syncs and record changes. A payment's classification
-- is its newest row; an 'unclassify' row returns it to its declaration or the rule.
CREATE SEQUENCE payment_classification_ids START 1;

CREATE TABLE payment_classifications (
    classification_id BIGINT PRIMARY KEY DEFAULT nextval('payment_classification_ids'),
    signature VARCHAR NOT NULL,
    action VARCHAR NOT NULL CHECK (action IN ('classify', 'unclassify')),
    tax_class VARCHAR CHECK (CASE action WHEN 'classify' THEN coalesce(tax_class IN ('taxable', 'exempt', 'mixed'), false)
                                         ELSE tax_class IS NULL END),
    note VARCHAR NOT NULL,
    classified_by VARCHAR NOT NULL,
    classified_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE tax_classes (
    tax_class VARCHAR PRIMARY KEY,
    name_ko VARCHAR NOT NULL,
    name_en VARCHAR NOT NULL,
    sort_order INTEGER NOT NULL
);

INSERT INTO tax_classes VALUES
    ('taxable', '과세', 'taxable', 1),
    ('mixed', '과세·면세 혼합', 'taxable and exempt', 2),
    ('exempt', '면세', 'VAT-exempt', 3),
    ('impossible_vat', '부가세 확인 필요 (1/11 초과)', 'VAT above 1/11 of the price', 4),
    ('unclassified', '미분류', 'unclassified', 5);

-- The paymentMethodType codes seen from point3 (undocumented); any other code is shown as is.
CREATE TABLE payment_method_types (
    payment_method_type VARCHAR PRIMARY KEY,
    name_ko VARCHAR NOT NULL,
    name_en VARCHAR NOT NULL,
    sort_order INTEGER NOT NULL
);

INSERT INTO payment_method_types VALUES
    ('CARD', '신용카드', 'card', 1),
    ('EASY_PAY', '간편결제', 'easy pay', 2),
    ('BANK_TRANSFER', '계좌이체', 'bank transfer', 3);

-- Whether a person's class can be applied to a payment's figures with no negative amount:
-- taxable needs vat <= totalCharge, mixed needs 11 × vat <= totalCharge. One definition for
-- the classify command's check and for payment_tax_split (which falls back when a record
-- changed after it was classified).
CREATE MACRO tax_class_fits(tax_class, total_charge, vat) AS
    CASE tax_class
        WHEN 'exempt' THEN true
        WHEN 'taxable' THEN vat <= total_charge
        WHEN 'mixed' THEN 11 * CAST(vat AS HUGEINT) <= total_charge
        ELSE false
    END;

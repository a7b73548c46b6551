-- Lines without a UPC are real (YouTube UGC, many DDEX DSR usage lines, some distributor
-- exports): royalty_line v4 makes it optional, and so does the ledger. A missing UPC is
-- unknown, not a change: a later copy that carries one fills it in (an enrichment).
ALTER TABLE royalty_ledger ALTER COLUMN upc DROP NOT NULL;

-- The owner label of clients managed declaratively (`portcullis apply`):
-- set by apply on the clients a document creates or adopts, and the only
-- clients `apply --prune` may delete are those carrying the document's owner.
-- NULL for clients created by hand.
ALTER TABLE clients ADD COLUMN owner TEXT;
CREATE INDEX clients_owner ON clients (owner) WHERE owner IS NOT NULL;

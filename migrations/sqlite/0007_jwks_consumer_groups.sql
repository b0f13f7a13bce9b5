-- JWKS consumers are bounded per address group (an IPv4 address, or an IPv6
-- /64): the group each consumer counts under. Existing rows count under their
-- own address.
ALTER TABLE jwks_consumers ADD COLUMN address_group TEXT NOT NULL DEFAULT '';
UPDATE jwks_consumers SET address_group = address;
CREATE INDEX jwks_consumers_address_group ON jwks_consumers(address_group);

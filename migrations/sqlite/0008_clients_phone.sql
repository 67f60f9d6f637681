-- SMS replies and receipts arrive by phone number: find its clients by index.
CREATE INDEX clients_phone ON clients (phone);

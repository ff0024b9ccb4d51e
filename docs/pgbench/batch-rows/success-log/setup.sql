-- Deliveries to update, as the worker finds them (pending, claimed).
CREATE TABLE IF NOT EXISTS bench_ids (n int PRIMARY KEY, delivery_id uuid NOT NULL);

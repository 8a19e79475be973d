//! Versioned schema migrations, applied in order and tracked in `PRAGMA user_version`.
//! Never edit a migration that has shipped: add a new one.

pub const MIGRATIONS: &[&str] = &[
    // 1: catalogue, users, conversations, carts, orders, audit, inbox, outbox.
    r#"
    CREATE TABLE markets (
        slug TEXT PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        opens TEXT NOT NULL,
        closes TEXT NOT NULL,
        slots TEXT NOT NULL,              -- "07:00-09:00,09:00-11:00"
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        delivery_radius_km REAL NOT NULL,
        kelurahan TEXT NOT NULL,          -- "Blimbing|Purwodadi"
        order_seq INTEGER NOT NULL DEFAULT 0
    ) STRICT;

    CREATE TABLE commodities (
        id TEXT PRIMARY KEY,
        category TEXT NOT NULL,
        name TEXT NOT NULL,
        name_en TEXT NOT NULL,
        unit TEXT NOT NULL,
        aliases TEXT NOT NULL,            -- "|"-separated
        javanese TEXT NOT NULL,
        reference_price INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE stalls (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        number TEXT NOT NULL,
        name TEXT NOT NULL,
        trader TEXT NOT NULL,
        UNIQUE (market, number)
    ) STRICT;

    CREATE TABLE offers (
        id INTEGER PRIMARY KEY,
        stall_id INTEGER NOT NULL REFERENCES stalls(id),
        commodity_id TEXT NOT NULL REFERENCES commodities(id),
        price INTEGER NOT NULL CHECK (price > 0),
        UNIQUE (stall_id, commodity_id)
    ) STRICT;

    CREATE TABLE users (
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        lang TEXT,
        name TEXT,
        phone TEXT,
        address TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (channel, user_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE conversations (
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        state TEXT NOT NULL,              -- serde JSON of the role's state enum
        updated_at TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id, role)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE cart_lines (
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        offer_id INTEGER NOT NULL REFERENCES offers(id),
        quantity TEXT NOT NULL,           -- serde JSON of Quantity
        seq INTEGER NOT NULL,             -- order in which lines were added
        added_at TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id, offer_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        number TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL,
        buyer_name TEXT NOT NULL,
        phone TEXT NOT NULL,
        address TEXT,
        lat REAL,
        lon REAL,
        slot_date TEXT NOT NULL,
        slot TEXT NOT NULL,
        payment TEXT NOT NULL,
        note TEXT,
        total INTEGER NOT NULL,
        placed_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX orders_by_buyer ON orders (market, channel, user_id, id);

    CREATE TABLE sub_orders (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        stall_id INTEGER NOT NULL REFERENCES stalls(id),
        status TEXT NOT NULL,
        total INTEGER NOT NULL,
        UNIQUE (order_id, stall_id)
    ) STRICT;

    CREATE TABLE order_lines (
        id INTEGER PRIMARY KEY,
        sub_order_id INTEGER NOT NULL REFERENCES sub_orders(id),
        offer_id INTEGER NOT NULL REFERENCES offers(id),
        commodity_id TEXT NOT NULL,
        commodity_name TEXT NOT NULL,
        quantity TEXT NOT NULL,           -- serde JSON of Quantity
        quantity_base INTEGER NOT NULL,   -- grams, millilitres or pieces, for reports
        unit_price INTEGER NOT NULL,
        total INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE order_events (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        sub_order_id INTEGER REFERENCES sub_orders(id),
        from_status TEXT,
        to_status TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        source_id TEXT NOT NULL UNIQUE,
        market TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        event TEXT NOT NULL,              -- serde JSON of InboundEvent
        status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at TEXT NOT NULL,
        processed_at TEXT
    ) STRICT;
    -- Partial indexes stay a page or two: rows leave them when handled.
    CREATE INDEX inbox_pending ON inbox (id) WHERE status = 'pending';

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        message TEXT NOT NULL,            -- serde JSON of Outbound
        inbox_id INTEGER REFERENCES inbox(id),
        status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        sent_at TEXT
    ) STRICT;
    CREATE INDEX outbox_pending ON outbox (channel, id) WHERE status = 'pending';
    "#,
];

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

    -- Small settings: catalog_version (bumped on every catalogue change, so every process
    -- reloads its in-memory catalogue) and secret (keys invite codes).
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('catalog_version', '0');

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
        closed_on TEXT,                   -- local date the trader closed the stall for (/tutup)
        UNIQUE (market, number)
    ) STRICT;

    CREATE TABLE offers (
        id INTEGER PRIMARY KEY,
        stall_id INTEGER NOT NULL REFERENCES stalls(id),
        commodity_id TEXT NOT NULL REFERENCES commodities(id),
        price INTEGER NOT NULL CHECK (price > 0),
        stock INTEGER CHECK (stock >= 0), -- base units (g, ml, pieces); NULL = not counted
        UNIQUE (stall_id, commodity_id)
    ) STRICT;

    -- Who trades at a stall: each chat registered with /daftar. A stall may have several.
    CREATE TABLE stall_traders (
        stall_id INTEGER NOT NULL REFERENCES stalls(id),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (stall_id, channel, user_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX stall_traders_by_user ON stall_traders (channel, user_id);

    -- Admins granted at run time (the terminal's operator; later /admin_tambah). Admins from
    -- the config are not stored.
    CREATE TABLE staff (
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id, role)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE invites (
        code TEXT PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        stall_id INTEGER NOT NULL REFERENCES stalls(id),
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_by TEXT,
        used_at TEXT
    ) STRICT, WITHOUT ROWID;

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

    -- Users a market's bot cannot reach on a channel (they blocked the bot): messages to them are
    -- parked at once instead of tried, until they write to the bot again.
    CREATE TABLE unreachable (
        market TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        since TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX users_by_phone ON users (phone) WHERE phone IS NOT NULL;

    -- When each user last wrote to a market's bot on a channel: WhatsApp allows free-form
    -- messages only within 24 hours of that.
    CREATE TABLE last_inbound (
        market TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id)
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
        reason TEXT,                      -- why it was cancelled or rejected
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
        reason TEXT,                      -- why the stall rejected it or it was cancelled
        buyer_ack INTEGER NOT NULL DEFAULT 0,  -- shopper agreed to go on without it
        deadline_at TEXT,                 -- when the next reminder/escalation/cancel is due
        escalation INTEGER NOT NULL DEFAULT 0, -- 0 none, 1 reminded, 2 admin told
        UNIQUE (order_id, stall_id)
    ) STRICT;
    CREATE INDEX sub_orders_due ON sub_orders (deadline_at) WHERE status = 'awaiting_trader';
    CREATE INDEX sub_orders_by_stall ON sub_orders (stall_id, status);

    CREATE TABLE order_lines (
        id INTEGER PRIMARY KEY,
        sub_order_id INTEGER NOT NULL REFERENCES sub_orders(id),
        offer_id INTEGER NOT NULL REFERENCES offers(id),
        commodity_id TEXT NOT NULL,
        commodity_name TEXT NOT NULL,
        quantity TEXT NOT NULL,           -- serde JSON of Quantity (after weighing)
        quantity_base INTEGER NOT NULL,   -- grams, millilitres or pieces, for reports
        unit_price INTEGER NOT NULL,
        total INTEGER NOT NULL,
        ordered_quantity TEXT NOT NULL,   -- as the shopper ordered it
        ordered_unit_price INTEGER NOT NULL,
        out_of_stock INTEGER NOT NULL DEFAULT 0
    ) STRICT;

    CREATE TABLE order_events (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        sub_order_id INTEGER REFERENCES sub_orders(id),
        from_status TEXT,
        to_status TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        note TEXT
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
        status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed | held (until the user writes)
        attempts INTEGER NOT NULL DEFAULT 0,
        parts_sent INTEGER NOT NULL DEFAULT 0,   -- a message sent as several calls: how many went
        last_error TEXT,
        platform_id TEXT,                 -- the platform's id of what was sent (WhatsApp wamid)
        delivery TEXT,                    -- the platform's latest word on it: delivered, read, failed
        created_at TEXT NOT NULL,
        sent_at TEXT
    ) STRICT;
    CREATE INDEX outbox_pending ON outbox (channel, id) WHERE status = 'pending';
    CREATE INDEX outbox_by_platform_id ON outbox (platform_id) WHERE platform_id IS NOT NULL;
    -- Messages held for a user (outside WhatsApp's window), released when they write.
    CREATE INDEX outbox_held ON outbox (market, channel, recipient) WHERE status = 'held';
    -- The head of each chat's queue, for senders.
    CREATE INDEX outbox_pending_by_chat ON outbox (channel, market, recipient, id) WHERE status = 'pending';
    "#,
    // 2: an order's parts, a part's lines and a part's audit trail are looked up by their
    // parent on every order step; without these each lookup read the whole table (the engine
    // benchmark fell from 22k to 17k steps/s as orders piled up).
    r#"
    CREATE INDEX sub_orders_by_order ON sub_orders (order_id);
    CREATE INDEX order_lines_by_sub_order ON order_lines (sub_order_id);
    CREATE INDEX order_events_by_sub_order ON order_events (sub_order_id) WHERE sub_order_id IS NOT NULL;
    "#,
    // 3: orders per delivery slot (issue 6): each market's capacity, and the count of a slot's
    // orders read with an index.
    r#"
    ALTER TABLE markets ADD COLUMN slot_capacity INTEGER NOT NULL DEFAULT 30;
    CREATE INDEX orders_by_slot ON orders (market, slot_date, slot, status);
    "#,
    // 4: every sender reads its chats' queues through `outbox_pending_by_chat`; the older index
    // of all pending messages by channel only cost each message two more index writes.
    r#"
    DROP INDEX outbox_pending;
    "#,
    // 5: free delivery (issue 6): couriers invited by an admin, their shifts and last position;
    // one delivery per attempt at bringing an order, with its offers and audit trail.
    r#"
    CREATE TABLE couriers (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        phone TEXT NOT NULL,
        vehicle TEXT NOT NULL,
        plate TEXT NOT NULL,
        on_shift INTEGER NOT NULL DEFAULT 0,
        idle_since TEXT NOT NULL,         -- shift start or last delivery's end: "longest idle"
        lat REAL,                         -- latest shared position
        lon REAL,
        located_at TEXT,
        since TEXT NOT NULL,
        UNIQUE (market, channel, user_id)
    ) STRICT;
    CREATE INDEX couriers_by_user ON couriers (channel, user_id);

    CREATE TABLE courier_invites (
        code TEXT PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        profile TEXT NOT NULL,            -- serde JSON of CourierProfile
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_by TEXT,
        used_at TEXT
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        market TEXT NOT NULL REFERENCES markets(slug),
        status TEXT NOT NULL,
        courier_id INTEGER REFERENCES couriers(id),
        offer_deadline_at TEXT,           -- when the current offer lapses
        passed TEXT NOT NULL DEFAULT '[]',-- JSON list of courier ids not to offer it again
        proof TEXT,                       -- platform reference of the photo at the door
        fail_reason TEXT,
        late_alerted INTEGER NOT NULL DEFAULT 0, -- the admins were told it is past its slot
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX deliveries_by_order ON deliveries (order_id);
    -- Open deliveries not yet reported late: the timer's check for ones past their slot.
    CREATE INDEX deliveries_open ON deliveries (market)
        WHERE status IN ('offered', 'unassigned', 'assigned', 'on_the_way') AND late_alerted = 0;
    CREATE INDEX deliveries_by_courier ON deliveries (courier_id, status);
    CREATE INDEX deliveries_offers_due ON deliveries (offer_deadline_at) WHERE status = 'offered';
    CREATE INDEX deliveries_unassigned ON deliveries (market, id) WHERE status = 'unassigned';

    CREATE TABLE delivery_events (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        status TEXT NOT NULL,
        courier_id INTEGER,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        note TEXT
    ) STRICT;
    CREATE INDEX delivery_events_by_delivery ON delivery_events (delivery_id);
    -- The shopper's timeline reads an order's whole audit trail.
    CREATE INDEX order_events_by_order ON order_events (order_id);

    -- Orders still to be collected, by slot: the timer offers a courier when the slot is near.
    CREATE INDEX orders_before_pickup ON orders (slot_date)
        WHERE status IN ('confirmed', 'awaiting_payment', 'preparing', 'ready_for_pickup');
    "#,
    // 6: the shopper's ratings of a delivered order: the courier and each stall, 1-5, with one
    // comment for the order.
    r#"
    CREATE TABLE ratings (
        order_id INTEGER NOT NULL REFERENCES orders(id),
        target TEXT NOT NULL,             -- 'courier' | 'stall'
        target_id INTEGER NOT NULL,       -- couriers.id | stalls.id
        stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
        comment TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (order_id, target, target_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX ratings_by_target ON ratings (target, target_id);
    "#,
    // 7: deliveries by an outside vendor: its job id, the courier and position it reports, and
    // the job requests waiting to be posted to it (an outbox for the vendor's API).
    r#"
    ALTER TABLE deliveries ADD COLUMN by_vendor INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN vendor_job TEXT;
    ALTER TABLE deliveries ADD COLUMN vendor_courier TEXT;  -- serde JSON of CourierProfile
    ALTER TABLE deliveries ADD COLUMN vendor_lat REAL;
    ALTER TABLE deliveries ADD COLUMN vendor_lon REAL;
    ALTER TABLE deliveries ADD COLUMN vendor_located_at TEXT;

    CREATE TABLE vendor_requests (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        delivery_id INTEGER NOT NULL UNIQUE REFERENCES deliveries(id),
        body TEXT NOT NULL,               -- serde JSON of VendorJob
        status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_at TEXT NOT NULL,            -- not before (backoff after a failed try)
        created_at TEXT NOT NULL,
        sent_at TEXT
    ) STRICT;
    CREATE INDEX vendor_requests_pending ON vendor_requests (next_at) WHERE status = 'pending';
    "#,
    // 8: payments. A request per order (and a new one when the amount changes before it is
    // paid), with its expiry; and the ledger of every rupiah received, owed back and paid back.
    r#"
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        market TEXT NOT NULL REFERENCES markets(slug),
        method TEXT NOT NULL,             -- qris | transfer
        amount INTEGER NOT NULL CHECK (amount > 0),
        unique_code INTEGER NOT NULL DEFAULT 0,
        reference TEXT,                   -- the dynamic QRIS payload, or the virtual account
        status TEXT NOT NULL,             -- pending | paid | expired | cancelled
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        due_at TEXT NOT NULL,             -- the reminder's time, then the expiry's
        reminded INTEGER NOT NULL DEFAULT 0,
        paid_at TEXT
    ) STRICT;
    CREATE INDEX payments_by_order ON payments (order_id);
    CREATE INDEX payments_due ON payments (due_at) WHERE status = 'pending';

    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        market TEXT NOT NULL REFERENCES markets(slug),
        kind TEXT NOT NULL,               -- payment | refund_owed | refund
        method TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        reference TEXT UNIQUE,            -- makes a bank notification count once
        note TEXT
    ) STRICT;
    CREATE INDEX ledger_by_order ON ledger (order_id);
    CREATE INDEX ledger_by_time ON ledger (market, at);
    "#,
    // 9: virtual-account requests waiting to be posted to the bank partner's API (an outbox for
    // the bank, as vendor_requests is for the delivery vendor).
    r#"
    CREATE TABLE bank_requests (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        payment_id INTEGER NOT NULL UNIQUE REFERENCES payments(id),
        body TEXT NOT NULL,               -- serde JSON of VaCharge
        status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX bank_requests_pending ON bank_requests (next_at) WHERE status = 'pending';
    "#,
    // 10: administration: invite codes for market admins (made by a city admin), and the audit
    // of every admin command (who, when, what, on which object).
    r#"
    CREATE TABLE admin_invites (
        code TEXT PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_by TEXT,
        used_at TEXT
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE admin_audit (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        actor TEXT NOT NULL,              -- channel:user id
        command TEXT NOT NULL,
        object TEXT,                      -- the order, stall, courier or admin it was about
        detail TEXT,                      -- the rest of what was typed (cut to 200 characters)
        at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX admin_audit_by_market ON admin_audit (market, id);
    "#,
    // 11: a market closed by its admins (/pasar_tutup), with the reason shoppers see.
    r#"
    ALTER TABLE markets ADD COLUMN closed_reason TEXT;
    "#,
    // 12: backups an admin asked for (/cadangan), made by the engine after the request commits.
    r#"
    CREATE TABLE backup_requests (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,            -- who asked, and is told the result
        created_at TEXT NOT NULL,
        done_at TEXT
    ) STRICT;
    CREATE INDEX backup_requests_pending ON backup_requests (id) WHERE done_at IS NULL;
    "#,
    // 13: stalls and couriers an admin took out of service (/nonaktif) until /aktif.
    r#"
    ALTER TABLE stalls ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE couriers ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
    "#,
    // 14: a commodity's picture in a market's catalogue (/foto), per channel: the platform's
    // reference to a photo an admin sent (a Telegram file id belongs to the bot that got it).
    r#"
    CREATE TABLE commodity_photos (
        market TEXT NOT NULL REFERENCES markets(slug),
        commodity_id TEXT NOT NULL REFERENCES commodities(id),
        channel TEXT NOT NULL,
        reference TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at TEXT NOT NULL,
        PRIMARY KEY (market, commodity_id, channel)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 15: broadcasts (/siaran). A shopper's consent to a market's news, per (market, channel,
    // user): given with /langganan (or the button under their first order), taken back with
    // /berhenti; a row with 0 is a "no" we must remember (the first-order button is not offered
    // again). A broadcast is a draft until its admin confirms it, then one outbox row per
    // subscriber marks it (`outbox.broadcast_id`), so its progress is counted from the outbox.
    r#"
    CREATE TABLE subscriptions (
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        subscribed INTEGER NOT NULL,      -- 1 opted in, 0 opted out
        changed_at TEXT NOT NULL,
        PRIMARY KEY (market, channel, user_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE broadcasts (
        id INTEGER PRIMARY KEY,
        market TEXT NOT NULL REFERENCES markets(slug),
        channel TEXT NOT NULL,            -- the admin who wrote it, and sees its progress
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'draft',  -- draft | cancelled | sending | done
        created_at TEXT NOT NULL,
        started_at TEXT,
        recipients INTEGER NOT NULL DEFAULT 0,
        progress_outbox_id INTEGER,       -- the admin's latest progress message (its platform id is edited)
        reported TEXT,                    -- the counts last shown, "sent/failed/unreachable"
        reported_at TEXT,
        finished_at TEXT,
        sent INTEGER,
        failed INTEGER,
        unreachable INTEGER
    ) STRICT;
    CREATE INDEX broadcasts_sending ON broadcasts (id) WHERE status = 'sending';

    ALTER TABLE outbox ADD COLUMN broadcast_id INTEGER REFERENCES broadcasts(id);
    CREATE INDEX outbox_by_broadcast ON outbox (broadcast_id, status) WHERE broadcast_id IS NOT NULL;
    "#,
    // 16: orders by when they were placed (/statistik, /ekspor, pasar export read ranges), and a
    // WhatsApp number's own upload of a catalogue photo a user sent it (WhatsApp sends only
    // its own uploads, kept 30 days), so a restart does not upload it again.
    r#"
    CREATE INDEX orders_by_placed ON orders (placed_at);
    ALTER TABLE commodity_photos ADD COLUMN upload_id TEXT;
    ALTER TABLE commodity_photos ADD COLUMN uploaded_at TEXT;
    "#,
    // 17: how many orders each delivery slot holds, kept by triggers as orders are placed,
    // cancelled or rejected, so that checking a slot's room reads one row instead of counting
    // its orders (the count grew with every order of the day).
    r#"
    CREATE TABLE slot_bookings (
        market TEXT NOT NULL,
        slot_date TEXT NOT NULL,
        slot TEXT NOT NULL,
        orders INTEGER NOT NULL,
        PRIMARY KEY (market, slot_date, slot)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO slot_bookings (market, slot_date, slot, orders)
        SELECT market, slot_date, slot, COUNT(*) FROM orders
        WHERE status NOT IN ('cancelled', 'rejected') GROUP BY market, slot_date, slot;
    CREATE TRIGGER slot_bookings_on_insert AFTER INSERT ON orders
    WHEN NEW.status NOT IN ('cancelled', 'rejected')
    BEGIN
        INSERT INTO slot_bookings (market, slot_date, slot, orders) VALUES (NEW.market, NEW.slot_date, NEW.slot, 1)
        ON CONFLICT (market, slot_date, slot) DO UPDATE SET orders = orders + 1;
    END;
    CREATE TRIGGER slot_bookings_off_on_update AFTER UPDATE OF status, market, slot_date, slot ON orders
    WHEN OLD.status NOT IN ('cancelled', 'rejected')
    BEGIN
        UPDATE slot_bookings SET orders = orders - 1
        WHERE market = OLD.market AND slot_date = OLD.slot_date AND slot = OLD.slot;
    END;
    CREATE TRIGGER slot_bookings_on_on_update AFTER UPDATE OF status, market, slot_date, slot ON orders
    WHEN NEW.status NOT IN ('cancelled', 'rejected')
    BEGIN
        INSERT INTO slot_bookings (market, slot_date, slot, orders) VALUES (NEW.market, NEW.slot_date, NEW.slot, 1)
        ON CONFLICT (market, slot_date, slot) DO UPDATE SET orders = orders + 1;
    END;
    CREATE TRIGGER slot_bookings_on_delete AFTER DELETE ON orders
    WHEN OLD.status NOT IN ('cancelled', 'rejected')
    BEGIN
        UPDATE slot_bookings SET orders = orders - 1
        WHERE market = OLD.market AND slot_date = OLD.slot_date AND slot = OLD.slot;
    END;
    "#,
    // 18: a chat's sent messages, newest first: a WhatsApp user's typed number is read against
    // the last menu sent to them (`recent_sent_to`), which without this index walked the whole
    // outbox back from its newest row, holding up every webhook behind it (seconds in `pasar
    // loadtest rush`). Partial, like `outbox_pending_by_chat`: over every status, the planner
    // took it for the senders' read of the pending heads and walked a market's whole history.
    r#"
    CREATE INDEX outbox_sent_by_chat ON outbox (market, channel, recipient, id) WHERE status = 'sent';
    "#,
    // 19: the market's words. A commodity's sellable step (estimates from money round to it)
    // and, for goods sold by weight, the piece people order them by with its average weight
    // (`ayam 1 ekor`). A cart or order line remembers how it was asked for (`brambang 5rb`:
    // the price is the sum; `ayam 1 ekor`: an estimate until weighed) as serde JSON of
    // `OrderedBy`, NULL for a plain quantity. Markets say how far a weighing may stray from a
    // piece estimate before the shopper is asked.
    r#"
    ALTER TABLE commodities ADD COLUMN step INTEGER NOT NULL DEFAULT 1;
    UPDATE commodities SET step = 100 WHERE unit IN ('kg', 'liter');
    ALTER TABLE commodities ADD COLUMN piece TEXT;
    ALTER TABLE commodities ADD COLUMN piece_grams INTEGER;
    ALTER TABLE cart_lines ADD COLUMN ordered_by TEXT;
    ALTER TABLE order_lines ADD COLUMN ordered_by TEXT;
    ALTER TABLE markets ADD COLUMN weigh_tolerance_percent INTEGER NOT NULL DEFAULT 15;
    "#,
    // 20: invite codes are stored by a keyed hash (`code_key`), never in clear; each keeps the
    // seed its code was made from, so that once it is used or expired the code can be found
    // and redacted in the stored messages that carried it (`redacted_at`). Codes stored in
    // clear before this are re-keyed when the engine opens (it holds the secret, SQL does not).
    r#"
    ALTER TABLE invites ADD COLUMN seed TEXT;
    ALTER TABLE invites ADD COLUMN redacted_at TEXT;
    ALTER TABLE courier_invites ADD COLUMN seed TEXT;
    ALTER TABLE courier_invites ADD COLUMN redacted_at TEXT;
    ALTER TABLE admin_invites ADD COLUMN seed TEXT;
    ALTER TABLE admin_invites ADD COLUMN redacted_at TEXT;
    "#,
    // 21: the platform ids of updates a purge removed, as SHA-256 hashes: the inbox ignores them
    // like the ids of rows it still holds, so a captured webhook or callback cannot be played
    // again once its row is gone.
    r#"
    CREATE TABLE inbox_seen (key BLOB PRIMARY KEY) STRICT, WITHOUT ROWID;
    "#,
];

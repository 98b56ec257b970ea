-- Phone-number search by any run of digits ("555 0123" finds
-- +14255550123) without scanning every participant: an FTS5 trigram
-- index over the digits-only column, kept in step by triggers like
-- participants_fts. Queries of fewer than 3 digits (no trigram) still use
-- LIKE on the column.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE VIRTUAL TABLE participant_digits_fts USING fts5 (
    phone_digits,
    content = 'participants', content_rowid = 'pk',
    tokenize = 'trigram'
);

CREATE TRIGGER participant_digits_fts_insert AFTER INSERT ON participants BEGIN
    INSERT INTO participant_digits_fts (rowid, phone_digits) VALUES (new.pk, new.phone_digits);
END;
CREATE TRIGGER participant_digits_fts_delete AFTER DELETE ON participants BEGIN
    INSERT INTO participant_digits_fts (participant_digits_fts, rowid, phone_digits)
    VALUES ('delete', old.pk, old.phone_digits);
END;
CREATE TRIGGER participant_digits_fts_update AFTER UPDATE OF phone_digits ON participants BEGIN
    INSERT INTO participant_digits_fts (participant_digits_fts, rowid, phone_digits)
    VALUES ('delete', old.pk, old.phone_digits);
    INSERT INTO participant_digits_fts (rowid, phone_digits) VALUES (new.pk, new.phone_digits);
END;

INSERT INTO participant_digits_fts (participant_digits_fts) VALUES ('rebuild');

-- Recording attributes (issue 16): what a capturing source reports beyond
-- the common columns, by name — for SIPREC calls the recording metadata's
-- extension data (e.g. an SBC's UCID or a contact-centre id in its own
-- XML namespace) and the call's DTMF events. A JSON object (text); `{}`
-- for everything else. Shown with the recording (`GET /api/recordings/{id}`).
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE recordings ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';

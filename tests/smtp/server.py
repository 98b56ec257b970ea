"""A local SMTP server for the alert e-mail test (tests/cli/alerts.rs).

Usage: server.py CERT_PEM KEY_PEM OUT_DIR

Listens on 127.0.0.1 (a free port, printed as "listening on PORT"),
offers STARTTLS with the given certificate and refuses MAIL before it
(require_starttls). Each message received is written to OUT_DIR as
<n>.eml, with <n>.json next to it saying whether the session was TLS,
the envelope sender and recipients.
"""

import asyncio
import json
import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller


class Save:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.out, str(self.n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "tls": session.ssl is not None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    cert, key, out = sys.argv[1:4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(
        Save(out),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        server_hostname="localhost",
    )
    controller.start()
    print(f"listening on {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

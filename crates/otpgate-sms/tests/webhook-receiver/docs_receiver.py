import base64, hashlib, hmac, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        wid, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "0")
        mac = hmac.new(KEY, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        ok = ts.isdigit() and abs(time.time() - int(ts)) < 300 and any(
            hmac.compare_digest(expected, s) for s in self.headers.get("webhook-signature", "").split())
        if ok:
            msg = json.loads(body)  # hand msg["text"] to your gateway for msg["to"] here
        self.send_response(204 if ok else 401)
        self.end_headers()

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Receiver).serve_forever()

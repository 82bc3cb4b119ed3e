// A webhook receiver as an operator would write it, verifying with the `standardwebhooks`
// package. Holds ONE secret (WEBHOOK_SECRET, whsec_…): during a rotation a receiver knows
// either the old or the new one, and otpgate signs with both.
// Prints its port on the first line of stdout. POST / verifies and answers 204 (or 401);
// GET /received answers the verified payloads, as JSON, in order.
import http from "node:http";
import { Webhook } from "standardwebhooks";

const wh = new Webhook(process.env.WEBHOOK_SECRET);
const received = [];

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/received") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(received));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    try {
      // Verifies the signature over id.timestamp.body and the timestamp's freshness.
      const payload = wh.verify(body, req.headers);
      received.push({ id: req.headers["webhook-id"], payload });
      res.writeHead(204);
      res.end();
    } catch (e) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { kind: "unauthorized" } }));
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});

import http from "node:http";
import { Webhook } from "standardwebhooks";

const wh = new Webhook(process.env.WEBHOOK_SECRET); // whsec_…
http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    try {
      const msg = wh.verify(body, req.headers); // throws unless signed by us, and fresh
      // Hand msg.text (or msg.code) to your gateway for msg.to over msg.channel here.
      res.writeHead(204).end();
    } catch {
      res.writeHead(401).end();
    }
  });
}).listen(Number(process.env.PORT ?? 8080), "127.0.0.1");

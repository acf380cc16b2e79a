// Run graphql-http's server audit against a URL; print one JSON line per audit.
// Usage: node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    line.reason = result.reason;
    if (result.response) {
      line.responseStatus = result.response.status;
      line.contentType = result.response.headers.get('content-type');
    }
  }
  console.log(JSON.stringify(line));
}

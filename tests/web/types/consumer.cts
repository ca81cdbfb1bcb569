// A CommonJS consumer of jobwire-client, resolved through the package's "require" condition
// (jobwire.cjs with jobwire.d.cts).
import jw = require("jobwire-client");

const client: jw.JobwireClient = new jw.JobwireClient({ url: "ws://127.0.0.1:8080/ws", devUser: "alice" });
const viaDefault: typeof jw.JobwireClient = jw.default;
const stopped: jw.ConnectionState = "stopped";
client.on("job", (job: jw.JobState) => job.status);
// @ts-expect-error unknown option types are refused here too
new jw.JobwireClient({ maxJobs: "many" });

export = { client, viaDefault, stopped };

// Browser use: the DOM's WebSocket class fits the WebSocket option, listeners get typed detail.
import { JobwireClient } from "jobwire-client";

const client = new JobwireClient({ url: "wss://jobs.example.com/ws", WebSocket, protocols: "jobwire.v1" });
client.addEventListener("state", (ev) => {
  const el: HTMLElement | null = document.getElementById("link");
  if (el) el.textContent = ev.detail.state;
});
export { client };

// Connects to tabagent-host over native messaging, runs LOAD_MODEL, a streamed CHAT and
// UNLOAD_MODEL, and posts what came back to the test's local listener (config.json names it).

async function report(url, body) {
  await fetch(url, { method: "POST", body: JSON.stringify(body) });
}

async function main() {
  const config = await (await fetch(chrome.runtime.getURL("config.json"))).json();
  const received = [];
  const waiting = new Map();
  let port;
  try {
    port = chrome.runtime.connectNative("com.tabagent.host");
  } catch (e) {
    await report(config.report, { error: "connectNative: " + e });
    return;
  }
  port.onMessage.addListener((m) => {
    received.push(m);
    if (m.status === "success" || m.status === "error") {
      const done = waiting.get(m.id);
      if (done) done(m);
    }
  });
  port.onDisconnect.addListener(() => {
    const why = chrome.runtime.lastError ? chrome.runtime.lastError.message : "closed";
    for (const done of waiting.values()) done({ status: "disconnected", why });
  });
  const call = (msg) =>
    new Promise((resolve) => {
      waiting.set(msg.id, resolve);
      port.postMessage(msg);
    });
  const load = await call({ id: 1, action: "LOAD_MODEL", modelPath: "smollm2" });
  const chat = await call({
    id: 2,
    action: "CHAT",
    modelId: "smollm2",
    messages: [{ role: "user", content: "Name a colour." }],
    options: { max_tokens: 16, temperature: 0 },
  });
  const unload = await call({ id: 3, action: "UNLOAD_MODEL", modelId: "smollm2" });
  const chunks = received.filter((m) => m.id === 2 && m.status === "streaming");
  await report(config.report, { load, chat, unload, chunks });
  port.disconnect();
}

main().catch((e) => fetch("http://127.0.0.1/none").finally(() => console.error(e)));

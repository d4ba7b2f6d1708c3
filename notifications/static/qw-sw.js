// The service worker of SPEC §10: shows a Web Push and focuses or opens its link.
//
// Registered by qw-push.js with scope /static/: it controls no page, it only
// receives pushes, so it cannot get in the way of the site's own pages.
// Payload: {type, title, body, link, tag}; the tag is the conversation, so a
// newer push replaces the older notification of the same conversation.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  const options = {
    body: typeof data.body === "string" ? data.body : "",
    data: { link: typeof data.link === "string" ? data.link : "/" },
  };
  if (typeof data.tag === "string" && data.tag) {
    options.tag = data.tag;
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(data.title || "QuantumWorks", options));
});

/** The link, if it is on this site; anything else opens the home page. */
function sameSiteUrl(link) {
  try {
    const url = new URL(link, self.location.origin);
    return url.origin === self.location.origin ? url : new URL("/", self.location.origin);
  } catch {
    return new URL("/", self.location.origin);
  }
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = sameSiteUrl(event.notification.data?.link || "/");
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const exact = windows.find((client) => client.url === target.href);
      if (exact) return exact.focus();
      const tab = windows.find((client) => new URL(client.url).origin === target.origin);
      if (tab && "navigate" in tab) {
        const focused = await tab.focus();
        return focused.navigate(target.href);
      }
      return self.clients.openWindow(target.href);
    })(),
  );
});

// The browser renewed the subscription (key rotation, expiry): subscribe again
// with the same application server key and tell the open pages, which store it
// (qw-push.js; every page load also re-sends the current subscription).
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(
    (async () => {
      const key = event.oldSubscription?.options?.applicationServerKey;
      const subscription =
        event.newSubscription ||
        (key
          ? await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
          : null);
      if (!subscription) return;
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        client.postMessage({ type: "qw-push-subscription", subscription: subscription.toJSON() });
      }
    })(),
  );
});

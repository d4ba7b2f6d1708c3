// Web Push in the browser (SPEC §10): subscribe this device, unsubscribe it, keep the server's copy fresh.
//
// `api(path, {method, body})` is the page's authenticated REST call, returning
// {ok, status, data} (the demo's qw-demo.js `api`). Dependency-free.

const WORKER = "/static/qw-sw.js";
const SCOPE = "/static/";

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** The registration, once its worker is active (pushManager.subscribe needs one). */
export async function registerWorker() {
  const registration = await navigator.serviceWorker.register(WORKER, { scope: SCOPE });
  const worker = registration.installing || registration.waiting;
  if (!registration.active && worker) {
    await new Promise((resolve) => {
      worker.addEventListener("statechange", () => worker.state === "activated" && resolve());
    });
  }
  return registration;
}

export async function currentSubscription() {
  if (!pushSupported()) return null;
  const registration = await navigator.serviceWorker.getRegistration(SCOPE);
  return registration ? registration.pushManager.getSubscription() : null;
}

/** Ask permission, subscribe with the server's VAPID key, store the subscription. Returns why not, or "". */
export async function enablePush(api) {
  if (!pushSupported()) return "This browser cannot receive Web Push.";
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return "Notifications are blocked for this site.";
  const { ok, data } = await api("/api/push/vapid-public-key/");
  if (!ok) return "Web Push is not configured on this server.";
  const registration = await registerWorker();
  let subscription;
  try {
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(data.public_key),
    });
  } catch (error) {
    return `The browser's push service refused: ${error.message}`;
  }
  const stored = await api("/api/push/subscriptions/", { method: "POST", body: subscription.toJSON() });
  return stored.ok ? "" : "The server refused this device's subscription.";
}

export async function disablePush(api) {
  const subscription = await currentSubscription();
  if (!subscription) return;
  await api("/api/push/subscriptions/", { method: "DELETE", body: { endpoint: subscription.endpoint } });
  await subscription.unsubscribe();
}

/** On every page load: re-send this device's subscription (it may have been renewed). */
export async function syncPush(api) {
  if (!pushSupported()) return;
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data?.type === "qw-push-subscription") {
      api("/api/push/subscriptions/", { method: "POST", body: event.data.subscription });
    }
  });
  if (Notification.permission !== "granted") return;
  const subscription = await currentSubscription();
  if (subscription) await api("/api/push/subscriptions/", { method: "POST", body: subscription.toJSON() });
}

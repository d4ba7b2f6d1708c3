// last_seq and the outbox of one user, kept in IndexedDB and shared by the tabs
// of the browser. Each unsent message is its own record, so a tab that is not
// the leader writes its messages in directly and the next leader finds them.
//
// A store (this one, or any object with the same methods) is:
//   load() → {lastSeq, outbox: [frame, …] oldest first}
//   saveSeq(n) · putOutbox(frame) · deleteOutbox(client_msg_id) · settled()

const DB_VERSION = 2;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class IndexedDBStore {
  constructor(key, { dbName = "qw-realtime" } = {}) {
    this.key = key;
    this.dbName = dbName;
    this.db = null;
    this.chain = Promise.resolve();
    this.order = 0;
  }

  async open() {
    if (this.db) return this.db;
    this.db = await new Promise((resolve, reject) => {
      const req = indexedDB.open(this.dbName, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("state")) db.createObjectStore("state");
        if (!db.objectStoreNames.contains("outbox")) {
          db.createObjectStore("outbox", { keyPath: "id" }).createIndex("owner", "owner");
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    // Another tab upgrading the database must not be blocked by this one.
    this.db.onversionchange = () => {
      this.db.close();
      this.db = null;
    };
    return this.db;
  }

  /** Writes run one after another, so an older state never lands after a newer one. */
  enqueue(work) {
    this.chain = this.chain.then(work).catch((error) => console.warn("qw-realtime: could not save state", error));
    return this.chain;
  }

  settled() {
    return this.chain;
  }

  async write(stores, fn) {
    const db = await this.open();
    const tx = db.transaction(stores, "readwrite");
    fn(tx);
    await new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  async load() {
    const db = await this.open();
    const tx = db.transaction(["state", "outbox"]);
    const saved = (await request(tx.objectStore("state").get(this.key))) || {};
    const records = await request(tx.objectStore("outbox").index("owner").getAll(this.key));
    records.sort((a, b) => a.order - b.order);
    const outbox = records.map((record) => record.frame);
    // Version 1 kept the outbox inside the state record: carry it over once.
    for (const frame of saved.outbox || []) {
      if (!outbox.some((f) => f.client_msg_id === frame.client_msg_id)) outbox.unshift(frame);
    }
    if (saved.outbox) {
      this.enqueue(() =>
        this.write(["state", "outbox"], (wtx) => {
          wtx.objectStore("state").put({ lastSeq: saved.lastSeq ?? null }, this.key);
          for (const frame of saved.outbox) wtx.objectStore("outbox").put(this.record(frame));
        }),
      );
    }
    return { lastSeq: saved.lastSeq ?? null, outbox };
  }

  record(frame) {
    // Wall clock first: records written by different tabs sort in the order they were typed.
    this.order = Math.max(this.order + 1, Date.now() * 1000);
    return { id: `${this.key}|${frame.client_msg_id}`, owner: this.key, order: this.order, frame };
  }

  saveSeq(lastSeq) {
    return this.enqueue(() => this.write(["state"], (tx) => tx.objectStore("state").put({ lastSeq }, this.key)));
  }

  putOutbox(frame) {
    const record = this.record(frame);
    return this.enqueue(() => this.write(["outbox"], (tx) => tx.objectStore("outbox").put(record)));
  }

  deleteOutbox(clientMsgId) {
    return this.enqueue(() =>
      this.write(["outbox"], (tx) => tx.objectStore("outbox").delete(`${this.key}|${clientMsgId}`)),
    );
  }
}

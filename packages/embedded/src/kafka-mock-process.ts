// Launcher for librdkafka's in-memory mock cluster, run as its own process by startMockKafka().
//
//   node kafka-mock-process.js '{"brokers":1,"topics":[{"name":"t","partitions":4}]}'
//
// Prints one JSON line on stdout: {"bootstrapServers":"127.0.0.1:port,..."} (or {"error":"..."}),
// then serves until SIGTERM/SIGINT, or until its parent goes away (stdin closes), and destroys
// the cluster cleanly. librdkafka's own log lines go to stderr.
import { existsSync } from "node:fs";
import koffi, { type LibraryHandle } from "koffi";

interface LauncherArgs {
  brokers?: number;
  topics?: { name: string; partitions: number; replicationFactor?: number }[];
}

const CANDIDATES = [
  "librdkafka.so.1", // whatever the dynamic loader finds (LD_LIBRARY_PATH, ld.so.cache)
  "/usr/lib/x86_64-linux-gnu/librdkafka.so.1",
  "/usr/lib/aarch64-linux-gnu/librdkafka.so.1",
  "/usr/lib64/librdkafka.so.1",
  "/usr/lib/librdkafka.so.1",
  "/usr/local/lib/librdkafka.so.1",
  "/opt/homebrew/lib/librdkafka.dylib",
  "/usr/local/lib/librdkafka.dylib",
];

function loadLibrdkafka(): LibraryHandle {
  const explicit = process.env.RDM_LIBRDKAFKA_PATH;
  const tried: string[] = [];
  for (const candidate of explicit ? [explicit] : CANDIDATES) {
    if (candidate.startsWith("/") && !existsSync(candidate)) {
      tried.push(`${candidate} (absent)`);
      continue;
    }
    try {
      return koffi.load(candidate);
    } catch (err) {
      tried.push(`${candidate} (${(err as Error).message})`);
    }
  }
  throw new Error(
    `librdkafka not found; install it with "apt-get install librdkafka1" (or set RDM_LIBRDKAFKA_PATH). Tried: ${tried.join("; ")}`,
  );
}

function reply(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function main(): void {
  const args: LauncherArgs = JSON.parse(process.argv[2] ?? "{}");
  const lib = loadLibrdkafka();

  koffi.opaque("rd_kafka_conf_t");
  koffi.opaque("rd_kafka_t");
  koffi.opaque("rd_kafka_mock_cluster_t");
  const version = lib.func("const char *rd_kafka_version_str(void)");
  const confNew = lib.func("rd_kafka_conf_t *rd_kafka_conf_new(void)");
  const confSet = lib.func(
    "int rd_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, _Out_ uint8_t *errstr, size_t errstr_size)",
  );
  const kafkaNew = lib.func(
    "rd_kafka_t *rd_kafka_new(int type, rd_kafka_conf_t *conf, _Out_ uint8_t *errstr, size_t errstr_size)",
  );
  const kafkaDestroy = lib.func("void rd_kafka_destroy(rd_kafka_t *rk)");
  const clusterNew = lib.func("rd_kafka_mock_cluster_t *rd_kafka_mock_cluster_new(rd_kafka_t *rk, int broker_cnt)");
  const clusterDestroy = lib.func("void rd_kafka_mock_cluster_destroy(rd_kafka_mock_cluster_t *mcluster)");
  const clusterBootstraps = lib.func("const char *rd_kafka_mock_cluster_bootstraps(rd_kafka_mock_cluster_t *mcluster)");
  const topicCreate = lib.func(
    "int rd_kafka_mock_topic_create(rd_kafka_mock_cluster_t *mcluster, const char *topic, int partition_cnt, int replication_factor)",
  );
  const errToStr = lib.func("const char *rd_kafka_err2str(int err)");

  const cstr = (buf: Buffer) => buf.toString("utf8", 0, Math.max(0, buf.indexOf(0)));
  const errstr = Buffer.alloc(512);
  const conf = confNew();
  // The handle only hosts the mock cluster; keep its own logging quiet unless asked.
  if (confSet(conf, "log_level", process.env.RDM_KAFKA_MOCK_LOG_LEVEL ?? "3", errstr, errstr.length) !== 0) {
    throw new Error(`rd_kafka_conf_set: ${cstr(errstr)}`);
  }
  const RD_KAFKA_PRODUCER = 0;
  const rk = kafkaNew(RD_KAFKA_PRODUCER, conf, errstr, errstr.length);
  if (!rk) throw new Error(`rd_kafka_new: ${cstr(errstr)}`);

  const mcluster = clusterNew(rk, args.brokers ?? 1);
  if (!mcluster) {
    kafkaDestroy(rk);
    throw new Error("rd_kafka_mock_cluster_new failed");
  }
  for (const t of args.topics ?? []) {
    const err = topicCreate(mcluster, t.name, t.partitions, t.replicationFactor ?? 1);
    if (err !== 0) throw new Error(`rd_kafka_mock_topic_create(${t.name}): ${errToStr(err)}`);
  }

  let closed = false;
  const shutdown = () => {
    if (closed) return;
    closed = true;
    clusterDestroy(mcluster);
    kafkaDestroy(rk);
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  // The parent holds our stdin open; when it dies (even by SIGKILL) stdin ends.
  process.stdin.on("end", shutdown);
  process.stdin.on("error", shutdown);
  process.stdin.resume();
  // Belt and braces for a parent that does not give us a stdin pipe.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown();
  }, 1000);

  reply({ bootstrapServers: clusterBootstraps(mcluster), librdkafka: version() });
}

try {
  main();
} catch (err) {
  reply({ error: (err as Error).message });
  process.exit(1);
}

// Generates TypeScript from ../../proto with protoc + protoc-gen-es, fully offline.
// buf/validate/validate.proto is only on the Buf registry, so its descriptors are taken from the
// @bufbuild/protovalidate package and handed to protoc as a descriptor set (see design §7). That
// set is published beside the sources (proto/protovalidate.binpb), so a client in another
// language compiles proto/ with plain protoc; written only when the package's version changes it.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoRoot = join(pkg, "../../proto");

function withDependencies(file, seen = new Map()) {
  if (seen.has(file.name)) return seen;
  for (const dep of file.dependencies) withDependencies(dep, seen);
  seen.set(file.name, file);
  return seen;
}
const validateSet = create(FileDescriptorSetSchema, {
  file: [...withDependencies(file_buf_validate_validate).values()].map((f) => f.proto),
});
const validateSetPath = join(protoRoot, "protovalidate.binpb");
const validateSetBytes = toBinary(FileDescriptorSetSchema, validateSet);
if (!existsSync(validateSetPath) || !readFileSync(validateSetPath).equals(validateSetBytes)) {
  writeFileSync(validateSetPath, validateSetBytes);
}

const protoFiles = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith(".proto")) protoFiles.push(relative(protoRoot, path));
  }
})(protoRoot);
protoFiles.sort();

const outDir = join(pkg, "src/gen");
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const common = [`--descriptor_set_in=${validateSetPath}`, `-I${protoRoot}`];
execFileSync(
  "protoc",
  [
    ...common,
    `--plugin=protoc-gen-es=${join(pkg, "node_modules/.bin/protoc-gen-es")}`,
    `--es_out=${outDir}`,
    "--es_opt=target=ts,import_extension=js,rewrite_imports=./buf/**/*_pb.js:@bufbuild/protovalidate/gen",
    ...protoFiles,
  ],
  { stdio: "inherit" },
);
// The descriptor image (with imports) serves gRPC reflection and is the input of buf lint/breaking.
execFileSync(
  "protoc",
  [...common, "--include_imports", "--include_source_info", `-o${join(pkg, "image.binpb")}`, ...protoFiles],
  {
    stdio: "inherit",
  },
);
console.log(`generated ${protoFiles.length} files`);

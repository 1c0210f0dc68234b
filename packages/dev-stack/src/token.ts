// Mints a token for the local stack, signed with the secret `./rdm up` generated, so you can act
// as different people (an approver in the cab, a coordinator...) while trying the platform:
//   ./rdm token ann approver --groups cab
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isRole, mintDevToken, subjectProblem } from "@rdm/auth";

const usage = "usage: ./rdm token <subject> <role[,role...]> [--groups g1,g2] [--expires 12h]";

async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { groups: { type: "string", default: "" }, expires: { type: "string", default: "12h" } },
  });
  const [subject, roleList] = positionals;
  if (!subject || !roleList) throw new Error(usage);
  // A token every service would refuse (UNAUTHENTICATED) is not minted.
  const problem = subjectProblem(subject);
  if (problem) throw new Error(`subject: ${problem.replace('the "sub" claim', "it")}\n${usage}`);
  const roles = roleList.split(",").filter(Boolean);
  const unknown = roles.filter((r) => !isRole(r));
  if (unknown.length) throw new Error(`unknown role(s): ${unknown.join(", ")}\n${usage}`);
  const root = fileURLToPath(new URL("../../..", import.meta.url));
  const file = path.join(path.resolve(process.env.RDM_DATA_DIR ?? path.join(root, ".data")), "dev-jwt-secret");
  if (!existsSync(file)) throw new Error(`${file} does not exist: start the stack once with ./rdm up`);
  const token = await mintDevToken({
    subject,
    roles: roles.filter(isRole),
    groups: values.groups.split(",").filter(Boolean),
    secret: readFileSync(file, "utf8").trim(),
    issuer: "rdm",
    audience: "rdm",
    expiresIn: values.expires,
  });
  console.log(token);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(2);
});

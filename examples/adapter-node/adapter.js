// 示例部門 (nodedemo): an example department adapter for the unstuck coordination bus, written in
// JavaScript from the published contract (schemas/asyncapi.yaml, schemas/json/coordination-*.json)
// with the `nats` npm package. It does what the Python adapter host does:
//   - serves unstuck.dept.nodedemo.coordinate in queue group unstuck.dept.nodedemo, as the NATS micro
//     service unstuck-nodedemo, so $SRV.PING / $SRV.STATS / $SRV.INFO find it;
//   - validates each request and answers a malformed one with a 400 error naming the field;
//   - drops a request whose reply_by has passed (the broker has stopped waiting);
//   - answers a repeated request_id with the first answer, byte for byte.
//
// The code nodedemo is an example's own: no real department uses it, so this adapter never collides
// with a real one. The rules in decide() are modelled on a household-registration section (居住證,
// 身份證補領, 戶口遷入) to show every outcome; a department replaces CODE, NAME and decide().
//
//   node adapter.js [--nats nats://127.0.0.1:4222]      (or NATS_URL)

"use strict";

const { connect, StringCodec } = require("nats");

const CODE = "nodedemo";
const NAME = "示例部門（Node.js）";
const SUBJECT = `unstuck.dept.${CODE}.coordinate`;
const QUEUE = `unstuck.dept.${CODE}`;
const REMEMBER = 100000;

// --- the contract: what a CoordinationRequest may contain ----------------------------------------

const CATEGORIES = ["cannot", "hard", "refused", "guided"];
const TEXT = (min, max) => (v) => typeof v === "string" && v.trim().length >= min && v.length <= max;
const PATTERN = (re) => (v) => typeof v === "string" && re.test(v);
const FIELDS = {
  request_id: PATTERN(/^[A-Za-z0-9_-]{8,64}$/),
  case_id: PATTERN(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
  department: PATTERN(/^[a-z][a-z0-9_]{0,31}$/),
  category: (v) => CATEGORIES.includes(v),
  matter: PATTERN(/^[a-z][a-z0-9_]{0,63}$/),
  matter_title: TEXT(1, 200),
  facts: (v) =>
    v !== null &&
    typeof v === "object" &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => ["string", "number", "boolean"].includes(typeof x)),
  question: TEXT(1, 4000),
  deadline: (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v) && !isNaN(Date.parse(v)),
  reply_by: (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v) && !isNaN(Date.parse(v)),
  attempt: (v) => Number.isInteger(v) && v >= 1,
};
const OPTIONAL = new Set(["facts"]);

class BadRequest extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function parseRequest(data) {
  let body;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw new BadRequest("body", `invalid coordination request: body: not JSON (${err.message})`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new BadRequest("body", "invalid coordination request: body: must be a JSON object");
  }
  for (const key of Object.keys(body)) {
    if (!(key in FIELDS)) throw new BadRequest(key, `invalid coordination request: ${key}: unknown field`);
  }
  for (const [key, valid] of Object.entries(FIELDS)) {
    if (!(key in body)) {
      if (OPTIONAL.has(key)) continue;
      throw new BadRequest(key, `invalid coordination request: ${key}: Field required`);
    }
    if (!valid(body[key])) throw new BadRequest(key, `invalid coordination request: ${key}: invalid value`);
  }
  body.facts = body.facts || {};
  return body;
}

// --- the department's decisions -----------------------------------------------------------------

function dayBefore(isoDate) {
  const d = new Date(`${isoDate}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

const ELSEWHERE = {
  shop_sign: "chengguan",
  street_vending: "chengguan",
  name_registration: "scjg",
  business_licence: "scjg",
  pension_transfer: "renshe",
  unemployment_benefit: "renshe",
};

function decide(request) {
  const f = request.facts;
  const reply = (outcome, message, handler, extra = {}) => ({
    request_id: request.request_id,
    department: CODE,
    outcome,
    message,
    handler,
    ...extra,
  });
  switch (request.matter) {
    case "residence_permit": {
      const months = Number.isInteger(f.months_resided) ? f.months_resided : 0;
      if (months < 6) {
        return reply("cannot", `在本市居住${months}個月，未滿半年，暫不符合申領居住證的條件`, "戶政科", {
          legal_basis: "《居住證暫行條例》第二條",
        });
      }
      if (!f.residence_proof_provided) {
        return reply("need_materials", "缺少居住地住址證明，請補交後當場受理", "戶政科", {
          materials: ["居住地住址證明（租賃合同或房屋產權證明）", "居民身份證"],
        });
      }
      return reply("accepted", "符合申領條件，已受理，居住證自受理之日起15日內核發", "戶政科", {
        expected_date: dayBefore(request.deadline),
      });
    }
    case "id_card_reissue":
      if (f.applicant_under_16 && !f.guardian_present) {
        return reply("need_materials", "未滿十六周歲申領居民身份證，須由監護人代為申請", "戶政科", {
          materials: ["監護人居民身份證", "居民戶口簿"],
        });
      }
      return reply("resolved", "經所長覆核，已受理補領並當場辦理臨時居民身份證", "戶政科科長");
    case "household_transfer":
      if (f.settlement_policy_met) {
        return reply("resolved", "符合本市落戶條件，已辦理戶口遷入", "戶政科");
      }
      return reply("accepted", "需核實就業和社保繳納情況，已發函人社部門核驗", "戶政科", {
        expected_date: dayBefore(request.deadline),
      });
  }
  if (request.matter in ELSEWHERE) {
    return reply("not_ours", `${request.matter_title}不屬本部門職責`, "辦公室", {
      belongs_to: ELSEWHERE[request.matter],
    });
  }
  return reply("accepted", "已轉業務科室研究，按期答覆", "辦公室", { expected_date: request.deadline });
}

// --- serving it ----------------------------------------------------------------------------------

function natsUrl() {
  const i = process.argv.indexOf("--nats");
  if (i !== -1 && process.argv[i + 1]) return process.argv[i + 1];
  return process.env.NATS_URL || "nats://127.0.0.1:4222";
}

async function main() {
  const url = natsUrl();
  const nc = await connect({ servers: url, name: `unstuck-adapter-${CODE}` });
  const sc = StringCodec();
  const answers = new Map(); // request_id -> reply bytes, oldest first
  const counters = { handled: 0, replayed: 0, expired: 0, malformed: 0, failed: 0 };

  const service = await nc.services.add({
    name: `unstuck-${CODE}`,
    version: "0.1.0",
    description: `${NAME} (${CODE}) coordination adapter`,
    metadata: {
      department: CODE,
      name: NAME,
      adapter: "adapter-node",
      matters: "residence_permit,id_card_reissue,household_transfer",
    },
    // no service-wide queue: nats.js refuses dots there; the endpoint sets the contract's queue group
    statsHandler: async () => ({ ...counters }),
  });

  const refuse = (msg, field, error, fix) => {
    counters.malformed += 1;
    const body = { error: error.slice(0, 200), field, fix };
    msg.respondError(400, body.error, sc.encode(JSON.stringify(body)));
  };

  service.addEndpoint("coordinate", {
    subject: SUBJECT,
    queue: QUEUE,
    metadata: { department: CODE },
    handler: (err, msg) => {
      if (err) {
        console.error(`${CODE}: subscription error: ${err.message}`);
        return;
      }
      let request;
      try {
        request = parseRequest(msg.data);
      } catch (bad) {
        refuse(msg, bad.field || "body", bad.message, "send a CoordinationRequest as in schemas/json/coordination-request.json");
        return;
      }
      if (request.department !== CODE) {
        refuse(msg, "department", `request for ${request.department} reached ${CODE}`, `send it to unstuck.dept.${request.department}.coordinate`);
        return;
      }
      if (Date.parse(request.reply_by) < Date.now()) {
        counters.expired += 1; // the broker has stopped waiting: drop it unanswered
        return;
      }
      const cached = answers.get(request.request_id);
      if (cached !== undefined) {
        counters.replayed += 1;
        msg.respond(cached);
        return;
      }
      let body;
      try {
        body = sc.encode(JSON.stringify(decide(request)));
      } catch (failure) {
        counters.failed += 1;
        msg.respondError(500, `adapter ${CODE} failed: ${failure.message}`.slice(0, 300));
        return;
      }
      counters.handled += 1;
      answers.set(request.request_id, body);
      if (answers.size > REMEMBER) answers.delete(answers.keys().next().value);
      msg.respond(body);
    },
  });

  await nc.flush();
  console.log(`serving ${CODE} on ${url}; Ctrl-C stops`);

  const stop = async () => {
    await service.stop();
    await nc.drain();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(`${CODE} adapter: ${err.message}`);
  process.exit(1);
});

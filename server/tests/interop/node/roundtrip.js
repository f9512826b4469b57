// kafkajs round trip, run by server/tests/interop_node.rs (kafkajs from
// scripts/interop/install-node.sh, found through NODE_PATH=.cache/node/node_modules).
//
//   node roundtrip.js BOOTSTRAP TOPIC [--count N] [--timeout SECONDS]
//
// Creates TOPIC with 3 partitions, produces N records (acks=-1) with explicit partitions, keys
// (some null), values (one empty, one null, binary bytes), explicit CreateTime timestamps and
// headers (none; one; a duplicate key given as an array, {h: ['a', 'b']}, among other keys; a
// duplicate key with binary and empty values), consumes them in a fresh consumer group
// (autoCommit off, every batch committed explicitly with commitOffsets), and checks that each
// record comes back exactly: partition, offset (its rank in its partition), key, value,
// timestamp and headers (key order and, for a duplicate key, the values in order). Then the
// group's committed offsets (admin.fetchOffsets) must equal the topic's end offsets
// (admin.fetchTopicOffsets). Prints a JSON summary on stdout; on any mismatch prints
// "kafkajs: STEP: WHAT" on stderr and exits 1.
//
// kafkajs headers are an object: a duplicate key is written as an array value, and it encodes
// that as one Kafka header per element, in order; on the way back a key seen more than once
// decodes to an array of Buffers, a key seen once to a single Buffer. So interleaved keys
// (a, b, a) cannot be expressed (they go out as a, a, b), and integer-like keys ("1") would be
// reordered by JavaScript before the others: this test uses neither. Nor null header values,
// which kafkajs cannot send.
//
// Checked against Apache Kafka 4.4 too (scripts/kafka-reference.sh): kafkajs 2.2.4 negotiates
// versions Kafka 4 still serves (Produce v7, Fetch v11, JoinGroup v5, OffsetCommit v5, ...);
// there it logs one "group coordinator is not available" (FindCoordinator v2) while
// __consumer_offsets is being created, and retries.
'use strict'

const { Kafka, logLevel, Partitioners } = require('kafkajs')

const CLIENT = 'kafkajs'
const PARTITIONS = 3

function usage() {
  process.stderr.write('usage: node roundtrip.js BOOTSTRAP TOPIC [--count N] [--timeout SECONDS]\n')
  process.exit(2)
}

const args = process.argv.slice(2)
if (args.length < 2) usage()
const [bootstrap, topic] = args
let count = 90
let timeoutS = 60
for (let i = 2; i < args.length; i += 2) {
  const v = Number(args[i + 1])
  if (!Number.isInteger(v) || v <= 0) usage()
  if (args[i] === '--count') count = v
  else if (args[i] === '--timeout') timeoutS = v
  else usage()
}
if (count < 8) usage()
const deadline = Date.now() + timeoutS * 1000

// Where a mismatch is reported: the step running.
let step = 'start'
class Mismatch extends Error {}
function fail(what) {
  throw new Mismatch(what)
}
function check(cond, what) {
  if (!cond) fail(what)
}

// kafkajs logs to stderr only (stdout is the JSON summary), warnings and up.
const logCreator = () => ({ namespace, level, label, log }) => {
  if (level <= logLevel.WARN) {
    const { message, ...extra } = log
    process.stderr.write(`${CLIENT} ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
  }
}

const kafka = new Kafka({
  clientId: 'corelog-interop-kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  logCreator,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5 },
})

// The records, in the order they are sent. Timestamps rise within each partition (kafkajs puts
// the last record's timestamp in the batch's maxTimestamp, not the largest) and are never 0
// (kafkajs sends Date.now() for a falsy timestamp).
function makeRecords(n) {
  const base = 1700000000000
  const recs = []
  for (let i = 0; i < n; i++) {
    const partition = i % PARTITIONS
    const key = i % 11 === 5 ? null : Buffer.from(`key-${i % 7}`)
    let value
    if (i === 1) value = Buffer.alloc(0)
    else if (i === 2) value = null
    else {
      const bytes = []
      for (let b = 0; b < (i * 37) % 300; b++) bytes.push((b * 7 + i) & 0xff)
      value = Buffer.concat([Buffer.from(`value-${i}-`), Buffer.from(bytes)])
    }
    let headers
    switch (i % 4) {
      case 0:
        headers = {}
        break
      case 1:
        headers = { seq: Buffer.from(String(i)) }
        break
      case 2:
        headers = { seq: Buffer.from(String(i)), h: [Buffer.from('a'), Buffer.from('b')], tail: Buffer.from('z') }
        break
      default:
        // No null header values: kafkajs 2.2.4 cannot send one (Buffer.byteLength(null) throws
        // while it sizes the record).
        headers = { dup: [Buffer.from([0, 255, 1]), Buffer.alloc(0), Buffer.from('last')], one: Buffer.alloc(0) }
    }
    recs.push({ i, partition, key, value, timestamp: String(base + i * 1000 + (i % 3)), headers })
  }
  return recs
}

const hex = b => (b == null ? 'null' : Buffer.from(b).toString('hex'))
const showHeaders = h =>
  JSON.stringify(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.map(hex) : hex(v)]))

// Sent and received headers agree: same keys in the same order, a duplicate key an array of the
// same values in the same order, a single key a single value.
function sameHeaders(sent, got) {
  const sk = Object.keys(sent)
  const gk = Object.keys(got)
  if (sk.length !== gk.length || sk.some((k, j) => k !== gk[j])) return false
  return sk.every(k => {
    const s = sent[k]
    const g = got[k]
    if (Array.isArray(s) !== Array.isArray(g)) return false
    if (!Array.isArray(s)) return sameBytes(s, g)
    return s.length === g.length && s.every((v, j) => sameBytes(v, g[j]))
  })
}
function sameBytes(a, b) {
  if (a == null || b == null) return a == null && b == null
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
}

async function withDeadline(what, promise) {
  let timer
  const left = deadline - Date.now()
  if (left <= 0) fail(`${what}: out of time (--timeout ${timeoutS})`)
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch(`${what}: not done within --timeout ${timeoutS} s`)), left)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function main() {
  const recs = makeRecords(count)
  const groupId = `${topic}-group`
  const admin = kafka.admin()
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false })
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 200 })
  const summary = { client: CLIENT, topic, group: groupId, partitions: PARTITIONS, produced: 0, consumed: 0 }

  try {
    step = 'admin connect'
    await withDeadline(step, admin.connect())

    step = 'create topic'
    const created = await withDeadline(
      step,
      admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
    )
    check(created === true, `createTopics returned ${created}, want true (a new topic)`)
    const meta = await withDeadline(step, admin.fetchTopicMetadata({ topics: [topic] }))
    const parts = meta.topics[0].partitions.map(p => p.partitionId).sort()
    check(JSON.stringify(parts) === JSON.stringify([0, 1, 2]), `partitions ${JSON.stringify(parts)}, want [0,1,2]`)

    step = 'produce'
    await withDeadline(step, producer.connect())
    const sent = await withDeadline(
      step,
      producer.send({
        topic,
        acks: -1,
        messages: recs.map(r => ({ partition: r.partition, key: r.key, value: r.value, timestamp: r.timestamp, headers: r.headers })),
      })
    )
    // One answer per partition: no error, base offset 0 (the topic is new).
    check(sent.length === PARTITIONS, `${sent.length} produce answers, want ${PARTITIONS}: ${JSON.stringify(sent)}`)
    for (const m of sent) {
      check(m.errorCode === 0, `partition ${m.partition}: error code ${m.errorCode}`)
      check(m.baseOffset === '0', `partition ${m.partition}: base offset ${m.baseOffset}, want 0`)
    }
    summary.produced = recs.length
    await producer.disconnect()

    // What each partition must hold, in order (offset = rank within the partition).
    const want = new Map()
    for (const r of recs) {
      if (!want.has(r.partition)) want.set(r.partition, [])
      want.get(r.partition).push(r)
    }

    step = 'consume'
    const next = new Map() // partition -> next expected offset
    let consumed = 0
    let commits = 0
    let failure = null
    let resolveDone
    const done = new Promise(resolve => (resolveDone = resolve))
    await withDeadline(step, consumer.connect())
    await withDeadline(step, consumer.subscribe({ topics: [topic], fromBeginning: true }))
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (failure) return
        try {
          const p = batch.partition
          check(batch.topic === topic, `batch from topic ${batch.topic}`)
          check(want.has(p), `batch from unexpected partition ${p}`)
          let last = null
          for (const m of batch.messages) {
            if (!isRunning() || isStale()) break
            const off = Number(m.offset)
            const expectOff = next.get(p) || 0
            check(off === expectOff, `partition ${p}: offset ${off}, want ${expectOff} (a gap, a repeat or a reorder)`)
            const r = want.get(p)[off]
            check(r !== undefined, `partition ${p}: offset ${off} beyond the ${want.get(p).length} records produced`)
            const where = `record ${r.i} (partition ${p} offset ${off})`
            check(sameBytes(m.key, r.key), `${where}: key ${hex(m.key)}, want ${hex(r.key)}`)
            check(sameBytes(m.value, r.value), `${where}: value ${hex(m.value)}, want ${hex(r.value)}`)
            check(m.timestamp === r.timestamp, `${where}: timestamp ${m.timestamp}, want ${r.timestamp}`)
            check(
              sameHeaders(r.headers, m.headers || {}),
              `${where}: headers ${showHeaders(m.headers || {})}, want ${showHeaders(r.headers)}`
            )
            resolveOffset(m.offset)
            next.set(p, off + 1)
            consumed++
            last = off
          }
          if (last !== null) {
            // Manual commit: the next offset to read, as Kafka defines a committed offset.
            await consumer.commitOffsets([{ topic, partition: p, offset: String(last + 1) }])
            commits++
          }
          await heartbeat()
          if (consumed === recs.length) resolveDone()
        } catch (e) {
          failure = e
          resolveDone()
        }
      },
    })
    await withDeadline(`${step} (${consumed} of ${recs.length} records so far)`, done)
    if (failure) throw failure
    check(consumed === recs.length, `consumed ${consumed}, want ${recs.length}`)
    summary.consumed = consumed
    summary.commits = commits

    step = 'consumer disconnect'
    await withDeadline(step, consumer.disconnect())

    step = 'committed offsets'
    const ends = await withDeadline(step, admin.fetchTopicOffsets(topic))
    const committed = await withDeadline(step, admin.fetchOffsets({ groupId, topics: [topic] }))
    check(committed.length === 1 && committed[0].topic === topic, `fetchOffsets answered ${JSON.stringify(committed)}`)
    const endOf = {}
    for (const e of ends) endOf[e.partition] = e.high
    const commitOf = {}
    for (const c of committed[0].partitions) commitOf[c.partition] = c.offset
    for (let p = 0; p < PARTITIONS; p++) {
      const n = String(want.get(p).length)
      check(endOf[p] === n, `partition ${p}: end offset ${endOf[p]}, want ${n} (records produced)`)
      check(commitOf[p] === endOf[p], `partition ${p}: committed offset ${commitOf[p]}, want the end offset ${endOf[p]}`)
    }
    summary.end_offsets = endOf
    summary.committed = commitOf
    summary.duplicate_header_records = recs.filter(r => Object.values(r.headers).some(Array.isArray)).length
    process.stdout.write(JSON.stringify(summary) + '\n')
  } finally {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()])
  }
}

main().then(
  () => process.exit(0),
  e => {
    const what = e instanceof Mismatch ? e.message : e && e.stack ? e.stack : String(e)
    process.stderr.write(`${CLIENT}: ${step}: ${what}\n`)
    process.exit(1)
  }
)

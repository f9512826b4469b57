// Consumer groups with the Apache Kafka Java client (4.x, classic group protocol) against one
// broker. Exits 0 when everything held, 1 (naming the failed step) if not.
//
// Single-file source launch (Java 11+), with the jars scripts/install-interop.sh puts in
// .cache/kafka-tools/lib:
//
//   java -cp '.cache/kafka-tools/lib/*' scripts/interop/java/Groups.java MODE BOOTSTRAP TOPIC GROUP
//
// Every member is a KafkaConsumer with subscribe() on a thread of its own; every record's value is
// its sequence number, sent to partition seq % partitions.
//
// MODE
//   eager         RangeAssignor. Member a consumes a first batch alone; member b joins, a's
//                 revocation (of everything: eager) commits what it consumed; the two split the
//                 partitions; a second batch; every record consumed exactly once; describeGroups
//                 shows 2 members, protocol "range"; after both close, listConsumerGroupOffsets
//                 equals the end offsets.
//   cooperative   The same with CooperativeStickyAssignor: a only ever gives up the partitions b
//                 takes, never all of them; protocol "cooperative-sticky".
//   static-rejoin Static members a and b (KIP-345, group.instance.id). a is closed (a static
//                 member sends no LeaveGroup) and restarted within its session timeout: it gets
//                 the same partitions back in the same generation, and b sees no rebalance at all
//                 (no revocation, no assignment, generation unchanged). Exactly once throughout.
//   static-fenced A static member is alive and a second consumer starts with the same
//                 group.instance.id: the new one takes the member's place and partitions, the old
//                 one is fenced (FencedInstanceIdException from its poll), as Kafka 4.4 does.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Groups {
    /** How long one step (a rebalance, records arriving, an admin call) may take. */
    static final long STEP_TIMEOUT_S = 60;
    /** Kafka's default group.min.session.timeout.ms: the lowest a stock broker accepts. */
    static final String SESSION_TIMEOUT_MS = "6000";
    /** Static members outlive a close by this much: ample for a restart in the same process. */
    static final String STATIC_SESSION_TIMEOUT_MS = "10000";
    /** Heartbeats this often tell members of a rebalance (or a fence) quickly. */
    static final String HEARTBEAT_INTERVAL_MS = "500";
    /** Also the rebalance timeout: how long the coordinator waits for members to rejoin. */
    static final String MAX_POLL_INTERVAL_MS = "20000";
    /** After the last expected record, how long to keep polling for duplicates or rebalances. */
    static final long QUIET_MS = 1500;
    /** How long the broker may hold a fetch for data: short, so records move fast. */
    static final String FETCH_MAX_WAIT_MS = "100";
    static final int PARTITIONS = 4;
    static final int BATCH = 200;

    static String mode;

    static void fail(String step, String msg) {
        System.err.println("groups-java " + mode + ": FAIL [" + step + "]: " + msg);
        System.out.flush();
        // halt, not exit: consumer threads may be blocked in poll.
        Runtime.getRuntime().halt(1);
    }

    static void check(boolean ok, String step, String msg) {
        if (!ok) fail(step, msg);
    }

    static final long START_NS = System.nanoTime();

    static void log(String msg) {
        System.out.println("groups-java " + mode + " +" + (System.nanoTime() - START_NS) / 1_000_000 + "ms: " + msg);
    }

    static <T> T get(String step, KafkaFuture<T> f) {
        try {
            return f.get(STEP_TIMEOUT_S, TimeUnit.SECONDS);
        } catch (Exception e) {
            fail(step, e.toString());
            return null;
        }
    }

    /** Every record any member handed to the program: seq -> where it was read ("member@p/o"). */
    static final ConcurrentHashMap<Long, List<String>> seen = new ConcurrentHashMap<>();

    static int seenCount() {
        return seen.values().stream().mapToInt(List::size).sum();
    }

    /** Each sequence number of [from, to) seen exactly once, nothing else. */
    static void checkExactlyOnce(String step, long from, long to) {
        for (Map.Entry<Long, List<String>> e : seen.entrySet()) {
            check(e.getKey() >= from && e.getKey() < to, step, "record " + e.getKey() + " was never produced (" + e.getValue() + ")");
            check(e.getValue().size() == 1, step, "record " + e.getKey() + " consumed " + e.getValue().size() + " times: " + e.getValue());
        }
        for (long s = from; s < to; s++) check(seen.containsKey(s), step, "record " + s + " never consumed");
    }

    /** A group member: one KafkaConsumer, subscribed, polled on its own thread. */
    static final class Member implements Runnable {
        final String name;
        final Properties props;
        final String topic;
        /** Commit after every non-empty poll (otherwise only on revocation and at close). */
        final boolean commitEachPoll;
        final Thread thread;
        volatile boolean stop;
        volatile Set<Integer> assignment = Set.of();
        volatile int generation = -1;
        volatile Throwable failure;
        volatile FencedInstanceIdException fenced;
        /** Non-empty revocations, lost partitions and assignments, in order. */
        final List<String> events = Collections.synchronizedList(new ArrayList<>());
        final List<Set<Integer>> revocations = Collections.synchronizedList(new ArrayList<>());
        volatile int consumed;

        Member(String name, Properties base, String topic, boolean commitEachPoll) {
            this.name = name;
            this.props = new Properties();
            this.props.putAll(base);
            this.props.put("client.id", "groups-java-" + name);
            this.topic = topic;
            this.commitEachPoll = commitEachPoll;
            this.thread = new Thread(this, "member-" + name);
            this.thread.setDaemon(true);
            this.thread.start();
        }

        static Set<Integer> parts(Collection<TopicPartition> tps) {
            Set<Integer> s = new TreeSet<>();
            for (TopicPartition tp : tps) s.add(tp.partition());
            return s;
        }

        public void run() {
            KafkaConsumer<String, String> c = null;
            try {
                c = new KafkaConsumer<>(props);
                final KafkaConsumer<String, String> consumer = c;
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                        if (tps.isEmpty()) return;
                        events.add("revoked " + parts(tps));
                        revocations.add(parts(tps));
                        // What was polled has been handed over: the next owner starts after it.
                        consumer.commitSync();
                    }

                    public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                        events.add("assigned " + parts(tps));
                    }

                    public void onPartitionsLost(Collection<TopicPartition> tps) {
                        events.add("lost " + parts(tps));
                    }
                });
                while (!stop) {
                    ConsumerRecords<String, String> rs;
                    try {
                        rs = c.poll(Duration.ofMillis(100));
                    } catch (FencedInstanceIdException e) {
                        fenced = e;
                        events.add("fenced");
                        return;
                    }
                    for (ConsumerRecord<String, String> r : rs) {
                        seen.computeIfAbsent(Long.parseLong(r.value()), k -> Collections.synchronizedList(new ArrayList<>()))
                                .add(name + "@" + r.partition() + "/" + r.offset());
                        consumed++;
                    }
                    if (commitEachPoll && !rs.isEmpty()) c.commitSync();
                    assignment = parts(c.assignment());
                    generation = c.groupMetadata().generationId();
                }
                c.commitSync();
            } catch (Throwable t) {
                failure = t;
            } finally {
                if (c != null) {
                    try {
                        c.close(CloseOptions.timeout(Duration.ofSeconds(STEP_TIMEOUT_S)));
                    } catch (Throwable t) {
                        // A fenced member's close may report the fence again.
                        if (fenced == null && failure == null) failure = t;
                    }
                }
            }
        }

        void close(String step) {
            stop = true;
            try {
                thread.join(TimeUnit.SECONDS.toMillis(STEP_TIMEOUT_S));
            } catch (InterruptedException e) {
                fail(step, "interrupted");
            }
            check(!thread.isAlive(), step, name + " did not close within " + STEP_TIMEOUT_S + "s");
            checkHealthy(step);
        }

        void checkHealthy(String step) {
            if (failure != null) fail(step, name + ": " + failure);
            if (fenced != null) fail(step, name + " was fenced: " + fenced);
        }

        String state() {
            return name + "{assignment=" + assignment + ", generation=" + generation + ", consumed=" + consumed + ", events=" + events + "}";
        }
    }

    /** Waits until cond holds, failing on any member's failure or after STEP_TIMEOUT_S. */
    static void waitFor(String step, List<Member> healthy, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STEP_TIMEOUT_S);
        while (true) {
            for (Member m : healthy) m.checkHealthy(step);
            if (cond.getAsBoolean()) return;
            if (System.nanoTime() > deadline) {
                StringBuilder sb = new StringBuilder("not reached within " + STEP_TIMEOUT_S + "s; " + seenCount() + " records seen;");
                for (Member m : healthy) sb.append(' ').append(m.state());
                fail(step, sb.toString());
            }
            Thread.sleep(20);
        }
    }

    /** Whether the members hold every partition between them, each once, each member some. */
    static boolean split(List<Member> ms) {
        Set<Integer> union = new TreeSet<>();
        int held = 0;
        for (Member m : ms) {
            Set<Integer> a = m.assignment;
            if (a.isEmpty()) return false;
            held += a.size();
            union.addAll(a);
        }
        return held == PARTITIONS && union.size() == PARTITIONS;
    }

    static void produce(Properties common, String topic, long from, long to) {
        Properties pp = new Properties();
        pp.putAll(common);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (long s = from; s < to; s++) fs.add(p.send(new ProducerRecord<>(topic, (int) (s % PARTITIONS), null, Long.toString(s))));
            p.flush();
            for (int i = 0; i < fs.size(); i++) {
                try {
                    fs.get(i).get(STEP_TIMEOUT_S, TimeUnit.SECONDS);
                } catch (Exception e) {
                    fail("produce", "record " + (from + i) + ": " + e);
                }
            }
        }
    }

    static void createTopic(Admin admin, String topic) throws InterruptedException {
        get("createTopics", admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STEP_TIMEOUT_S);
        while (true) {
            try {
                TopicDescription td = admin.describeTopics(List.of(topic)).allTopicNames().get(STEP_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
                if (td.partitions().size() == PARTITIONS && td.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty())) return;
            } catch (ExecutionException | TimeoutException e) {
                if (!(e.getCause() instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException)) fail("describeTopics", e.toString());
            }
            check(System.nanoTime() < deadline, "describeTopics", topic + " not ready");
            Thread.sleep(100);
        }
    }

    static Map<Integer, Long> endOffsets(Admin admin, String topic) {
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) req.put(new TopicPartition(topic, p), OffsetSpec.latest());
        Map<Integer, Long> out = new TreeMap<>();
        get("listOffsets", admin.listOffsets(req).all()).forEach((tp, info) -> out.put(tp.partition(), info.offset()));
        return out;
    }

    static Map<Integer, Long> committed(Admin admin, String group) {
        Map<Integer, Long> out = new TreeMap<>();
        Map<TopicPartition, OffsetAndMetadata> m = get("listConsumerGroupOffsets", admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        m.forEach((tp, om) -> out.put(tp.partition(), om == null ? -1 : om.offset()));
        return out;
    }

    static ConsumerGroupDescription describe(Admin admin, String group) {
        return get("describeConsumerGroups", admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    static void checkCommittedAtEnd(Admin admin, String group, String topic) {
        Map<Integer, Long> end = endOffsets(admin, topic), got = committed(admin, group);
        check(got.equals(end), "listConsumerGroupOffsets", "committed " + got + ", want the end offsets " + end);
        log("committed " + got + " = end offsets");
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: Groups.java eager|cooperative|static-rejoin|static-fenced BOOTSTRAP TOPIC GROUP");
            System.exit(2);
        }
        mode = args[0];
        String bootstrap = args[1], topic = args[2], group = args[3];
        log("start");
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("request.timeout.ms", "30000");
        common.put("default.api.timeout.ms", "60000");
        Properties cp = new Properties();
        cp.putAll(common);
        cp.put("group.id", group);
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("session.timeout.ms", SESSION_TIMEOUT_MS);
        cp.put("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS);
        cp.put("max.poll.interval.ms", MAX_POLL_INTERVAL_MS);
        cp.put("fetch.max.wait.ms", FETCH_MAX_WAIT_MS);
        try (Admin admin = Admin.create(common)) {
            createTopic(admin, topic);
            log("topic created");
            switch (mode) {
                case "eager" -> twoMembers(admin, common, cp, topic, group, RangeAssignor.class.getName(), "range");
                case "cooperative" -> twoMembers(admin, common, cp, topic, group, CooperativeStickyAssignor.class.getName(), "cooperative-sticky");
                case "static-rejoin" -> staticRejoin(admin, common, cp, topic, group);
                case "static-fenced" -> staticFenced(admin, common, cp, topic, group);
                default -> fail("args", "unknown mode " + mode);
            }
        }
        log("OK");
        // Members closed without leaving (static) keep nothing running here; exit at once.
        System.exit(0);
    }

    static void twoMembers(Admin admin, Properties common, Properties base, String topic, String group, String assignor, String protocol) throws Exception {
        Properties cp = new Properties();
        cp.putAll(base);
        cp.put("partition.assignment.strategy", assignor);
        produce(common, topic, 0, BATCH);
        log("first batch produced");
        Member a = new Member("a", cp, topic, false);
        waitFor("a alone consumes the first batch", List.of(a), () -> a.assignment.size() == PARTITIONS && seenCount() == BATCH);
        Member b = new Member("b", cp, topic, false);
        List<Member> both = List.of(a, b);
        waitFor("b joins and the partitions are split", both, () -> split(both));
        log("after b joined: " + a.state() + " " + b.state());
        Set<Integer> all = new TreeSet<>();
        for (int p = 0; p < PARTITIONS; p++) all.add(p);
        List<Set<Integer>> revs = new ArrayList<>(a.revocations);
        check(!revs.isEmpty(), "revocation", "a saw no revocation when b joined: " + a.state());
        if (protocol.equals("range")) {
            check(revs.contains(all), "eager revocation", "a never revoked all its partitions (eager protocol): " + revs);
        } else {
            for (Set<Integer> r : revs) check(!r.equals(all), "cooperative revocation", "a revoked all its partitions (cooperative protocol): " + revs);
            Set<Integer> given = new TreeSet<>();
            revs.forEach(given::addAll);
            check(given.equals(b.assignment), "cooperative revocation", "a revoked " + given + " but b holds " + b.assignment);
            check(b.revocations.isEmpty(), "cooperative revocation", "b revoked something: " + b.state());
        }
        check(b.assignment.size() == PARTITIONS / 2 && a.assignment.size() == PARTITIONS / 2, "balance",
                "want " + PARTITIONS / 2 + " partitions each: " + a.state() + " " + b.state());

        produce(common, topic, BATCH, 2 * BATCH);
        waitFor("both consume the second batch", both, () -> seenCount() >= 2 * BATCH);
        Thread.sleep(QUIET_MS);
        checkExactlyOnce("exactly once", 0, 2 * BATCH);
        check(b.consumed == BATCH / 2, "shared", "b consumed " + b.consumed + " records, want its half of the second batch, " + BATCH / 2);

        ConsumerGroupDescription d = describe(admin, group);
        log("described: " + d);
        check(d.groupState() == GroupState.STABLE, "describeConsumerGroups", "state " + d.groupState());
        check(d.type() == GroupType.CLASSIC, "describeConsumerGroups", "type " + d.type());
        check(protocol.equals(d.partitionAssignor()), "describeConsumerGroups", "assignor " + d.partitionAssignor() + ", want " + protocol);
        check(d.members().size() == 2, "describeConsumerGroups", d.members().size() + " members");
        Set<Set<Integer>> described = new HashSet<>();
        for (MemberDescription m : d.members()) described.add(Member.parts(m.assignment().topicPartitions()));
        check(described.equals(Set.of(a.assignment, b.assignment)), "describeConsumerGroups", "assignments " + described + ", members hold " + a.assignment + " " + b.assignment);

        a.close("close a");
        log("a closed");
        b.close("close b");
        log("b closed");
        checkCommittedAtEnd(admin, group, topic);
    }

    static void staticRejoin(Admin admin, Properties common, Properties base, String topic, String group) throws Exception {
        Properties pa = new Properties(), pb = new Properties();
        for (Properties p : List.of(pa, pb)) {
            p.putAll(base);
            p.put("session.timeout.ms", STATIC_SESSION_TIMEOUT_MS);
        }
        pa.put("group.instance.id", group + "-a");
        pb.put("group.instance.id", group + "-b");
        produce(common, topic, 0, BATCH);
        Member a = new Member("a", pa, topic, true);
        waitFor("a alone gets every partition", List.of(a), () -> a.assignment.size() == PARTITIONS);
        Member b = new Member("b", pb, topic, true);
        List<Member> both = List.of(a, b);
        waitFor("b joins and the partitions are split", both, () -> split(both) && seenCount() == BATCH);
        Thread.sleep(QUIET_MS);
        check(split(both), "settled", "assignment changed while idle: " + a.state() + " " + b.state());
        int gen = a.generation;
        check(gen > 0 && b.generation == gen, "generation", "a and b in generations " + a.generation + " and " + b.generation);
        Set<Integer> aParts = a.assignment, bParts = b.assignment;
        int bEvents = b.events.size();
        log("before a's restart: generation " + gen + ", " + a.state() + " " + b.state());

        a.close("close static a");
        Member a2 = new Member("a2", pa, topic, true);
        List<Member> now = List.of(a2, b);
        waitFor("a's restart gets its partitions back", now, () -> !a2.assignment.isEmpty());
        log("after a's restart: " + a2.state() + " " + b.state());
        check(a2.generation == gen, "no rebalance", "a's restart is in generation " + a2.generation + ", want the unchanged " + gen);
        check(a2.assignment.equals(aParts), "no rebalance", "a's restart holds " + a2.assignment + ", a held " + aParts);

        produce(common, topic, BATCH, 2 * BATCH);
        waitFor("the second batch consumed", now, () -> seenCount() >= 2 * BATCH);
        Thread.sleep(QUIET_MS);
        checkExactlyOnce("exactly once", 0, 2 * BATCH);
        List<String> bNew = new ArrayList<>(b.events.subList(bEvents, b.events.size()));
        check(bNew.isEmpty(), "no rebalance", "b saw " + bNew + " while a restarted");
        check(b.generation == gen && a2.generation == gen, "no rebalance", "generations now " + a2.generation + " and " + b.generation + ", want " + gen);
        check(b.assignment.equals(bParts) && a2.assignment.equals(aParts), "no rebalance", a2.state() + " " + b.state());

        ConsumerGroupDescription d = describe(admin, group);
        log("described: " + d);
        check(d.groupState() == GroupState.STABLE, "describeConsumerGroups", "state " + d.groupState());
        Set<String> instances = new TreeSet<>();
        for (MemberDescription m : d.members()) instances.add(m.groupInstanceId().orElse("(none)"));
        check(instances.equals(Set.of(group + "-a", group + "-b")), "describeConsumerGroups", "instance ids " + instances);

        a2.close("close a2");
        b.close("close b");
        checkCommittedAtEnd(admin, group, topic);
    }

    static void staticFenced(Admin admin, Properties common, Properties base, String topic, String group) throws Exception {
        Properties p = new Properties();
        p.putAll(base);
        p.put("session.timeout.ms", STATIC_SESSION_TIMEOUT_MS);
        p.put("group.instance.id", group + "-x");
        produce(common, topic, 0, BATCH);
        Member first = new Member("first", p, topic, true);
        waitFor("the first member consumes the first batch", List.of(first),
                () -> first.assignment.size() == PARTITIONS && seenCount() == BATCH);
        // Everything consumed is committed before the duplicate appears, so the duplicate must
        // resume exactly after it.
        waitFor("the first batch committed", List.of(first), () -> committed(admin, group).equals(endOffsets(admin, topic)));
        int gen = first.generation;
        log("first member: " + first.state());

        Member second = new Member("second", p, topic, true);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STEP_TIMEOUT_S);
        while (first.fenced == null && second.fenced == null) {
            if (first.failure != null) fail("fence", "first: " + first.failure);
            if (second.failure != null) fail("fence", "second: " + second.failure);
            check(System.nanoTime() < deadline, "fence", "nobody fenced within " + STEP_TIMEOUT_S + "s: " + first.state() + " " + second.state());
            Thread.sleep(20);
        }
        log("fenced: first=" + first.fenced + " second=" + second.fenced);
        check(first.fenced != null && second.fenced == null, "fence", "want the older member fenced, the newer one alive: " + first.state() + " " + second.state());
        try {
            first.thread.join(TimeUnit.SECONDS.toMillis(STEP_TIMEOUT_S));
        } catch (InterruptedException e) {
            fail("fence", "interrupted");
        }
        check(!first.thread.isAlive(), "fence", "the fenced member did not close");
        waitFor("the newer member takes every partition", List.of(second), () -> second.assignment.size() == PARTITIONS);
        log("second member: " + second.state() + " (generation before: " + gen + ")");
        check(second.generation == gen, "fence", "the newer member is in generation " + second.generation + ", want the unchanged " + gen + " (no rebalance)");

        produce(common, topic, BATCH, 2 * BATCH);
        waitFor("the second batch consumed", List.of(second), () -> seenCount() >= 2 * BATCH);
        Thread.sleep(QUIET_MS);
        checkExactlyOnce("exactly once", 0, 2 * BATCH);
        check(second.consumed == BATCH, "resume", "the newer member consumed " + second.consumed + " records, want the " + BATCH + " of the second batch");
        second.close("close second");
        checkCommittedAtEnd(admin, group, topic);
    }
}

// The Apache Kafka Java client (4.x) against one broker: admin, idempotent produce, assign+seek
// consume, exact round trip. Exits 0 when everything matched, 1 (printing what differed) if not.
//
// Single-file source launch (Java 11+), with the jars scripts/install-interop.sh puts in
// .cache/kafka-tools/lib:
//
//   java -cp '.cache/kafka-tools/lib/*' scripts/interop/java/Interop.java BOOTSTRAP TOPIC [COUNT]
//
// Steps, in order (each names itself on failure):
//   1. AdminClient.createTopics: TOPIC, 2 partitions, replication 1, retention.ms=3600000;
//   2. describeTopics: 2 partitions, each with a leader;
//   3. describeConfigs: retention.ms=3600000 (source: dynamic topic config);
//   4. incrementalAlterConfigs SET retention.ms=7200000, then describeConfigs shows it;
//   5. KafkaProducer with default settings (idempotent, acks=all): COUNT keyed records with
//      headers, one null key and one empty value among them; every send acknowledged;
//   6. listOffsets earliest/latest per partition: earliest 0, latest = records acked there;
//   7. KafkaConsumer (no group) assign + seek to 0: reads everything back; offsets contiguous
//      from 0, keys, values, headers, partitions exactly as sent and acked;
//   8. createPartitions to 3, describeTopics shows 3;
//   9. deleteTopics; the topic disappears from listTopics.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Interop {
    static final long TIMEOUT_S = 60;

    static void fail(String step, String msg) {
        System.err.println("interop-java: FAIL [" + step + "]: " + msg);
        System.exit(1);
    }

    static void check(boolean ok, String step, String msg) {
        if (!ok) fail(step, msg);
    }

    static <T> T get(String step, KafkaFuture<T> f) {
        try {
            return f.get(TIMEOUT_S, TimeUnit.SECONDS);
        } catch (Exception e) {
            fail(step, e.toString());
            return null;
        }
    }

    static String str(byte[] b) {
        return b == null ? "null" : "\"" + new String(b, StandardCharsets.UTF_8) + "\"";
    }

    static String configValue(Admin admin, String step, ConfigResource res, String name) {
        Config c = get(step, admin.describeConfigs(List.of(res)).all()).get(res);
        check(c != null, step, "no config for " + res);
        ConfigEntry e = c.get(name);
        check(e != null, step, name + " missing from describeConfigs");
        return e.value();
    }

    record Sent(byte[] key, byte[] value, List<Header> headers) {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Interop.java BOOTSTRAP TOPIC [COUNT]");
            System.exit(2);
        }
        String bootstrap = args[0], topic = args[1];
        int count = args.length > 2 ? Integer.parseInt(args[2]) : 200;

        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("client.id", "corelog-interop-java");
        common.put("request.timeout.ms", "30000");
        common.put("default.api.timeout.ms", "60000");

        try (Admin admin = Admin.create(common)) {
            // 1. createTopics
            NewTopic nt = new NewTopic(topic, 2, (short) 1).configs(Map.of("retention.ms", "3600000"));
            get("createTopics", admin.createTopics(List.of(nt)).all());

            // 2. describeTopics (metadata of a new topic may take a moment to reach the broker)
            TopicDescription td = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (System.nanoTime() < deadline) {
                try {
                    td = admin.describeTopics(List.of(topic)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
                    if (td.partitions().size() == 2 && td.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty())) break;
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException)) fail("describeTopics", e.toString());
                }
                Thread.sleep(100);
            }
            check(td != null, "describeTopics", "topic never described");
            check(td.name().equals(topic), "describeTopics", "name " + td.name());
            check(td.partitions().size() == 2, "describeTopics", "partitions " + td.partitions().size() + " != 2");
            for (TopicPartitionInfo p : td.partitions()) {
                check(p.leader() != null && !p.leader().isEmpty(), "describeTopics", "partition " + p.partition() + " has no leader");
                check(p.replicas().size() == 1, "describeTopics", "partition " + p.partition() + " replicas " + p.replicas());
            }
            check(!td.isInternal(), "describeTopics", "topic marked internal");

            // 3. describeConfigs
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            String v = configValue(admin, "describeConfigs", res, "retention.ms");
            check("3600000".equals(v), "describeConfigs", "retention.ms=" + v + ", want 3600000");
            Config all = get("describeConfigs", admin.describeConfigs(List.of(res)).all()).get(res);
            ConfigEntry ret = all.get("retention.ms");
            check(ret.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "describeConfigs",
                    "retention.ms source " + ret.source() + ", want DYNAMIC_TOPIC_CONFIG");
            ConfigEntry cp = all.get("cleanup.policy");
            check(cp != null && "delete".equals(cp.value()), "describeConfigs", "cleanup.policy default " + (cp == null ? "missing" : cp.value()));

            // 4. incrementalAlterConfigs
            get("incrementalAlterConfigs", admin.incrementalAlterConfigs(Map.of(res,
                    List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET)))).all());
            v = configValue(admin, "incrementalAlterConfigs", res, "retention.ms");
            check("7200000".equals(v), "incrementalAlterConfigs", "retention.ms=" + v + " after SET, want 7200000");

            // 5. produce, default settings (idempotent, acks=all)
            List<Sent> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                byte[] key = i == 0 ? null : ("key-" + (i % 5)).getBytes(StandardCharsets.UTF_8);
                byte[] value = i == 1 ? new byte[0] : ("value-" + i + "-" + "x".repeat(i % 37)).getBytes(StandardCharsets.UTF_8);
                List<Header> headers = List.of(new RecordHeader("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8)),
                        new RecordHeader("h2", new byte[]{0, (byte) 0xff, 7}));
                sent.add(new Sent(key, value, headers));
            }
            Properties pp = new Properties();
            pp.putAll(common);
            pp.put("key.serializer", ByteArraySerializer.class.getName());
            pp.put("value.serializer", ByteArraySerializer.class.getName());
            List<RecordMetadata> acked = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    Sent s = sent.get(i);
                    // Null-key records are spread by the sticky partitioner; pin it for a stable test.
                    Integer partition = s.key() == null ? 0 : null;
                    fs.add(producer.send(new ProducerRecord<>(topic, partition, s.key(), s.value(), s.headers())));
                }
                producer.flush();
                for (int i = 0; i < count; i++) {
                    try {
                        acked.add(fs.get(i).get(TIMEOUT_S, TimeUnit.SECONDS));
                    } catch (Exception e) {
                        fail("produce", "record " + i + ": " + e);
                    }
                }
            }
            Map<Integer, List<Integer>> byPartition = new TreeMap<>();
            Map<String, Integer> keyPartition = new HashMap<>();
            for (int i = 0; i < count; i++) {
                RecordMetadata m = acked.get(i);
                check(m.topic().equals(topic), "produce", "ack topic " + m.topic());
                check(m.hasOffset(), "produce", "record " + i + " acked without offset");
                byPartition.computeIfAbsent(m.partition(), p -> new ArrayList<>()).add(i);
                byte[] k = sent.get(i).key();
                if (k != null) {
                    Integer prev = keyPartition.putIfAbsent(new String(k, StandardCharsets.UTF_8), m.partition());
                    check(prev == null || prev == m.partition(), "produce", "key " + str(k) + " in partitions " + prev + " and " + m.partition());
                }
            }
            for (Map.Entry<Integer, List<Integer>> e : byPartition.entrySet()) {
                List<Integer> seqs = e.getValue();
                for (int j = 0; j < seqs.size(); j++) {
                    long off = acked.get(seqs.get(j)).offset();
                    check(off == j, "produce", "partition " + e.getKey() + ": record " + seqs.get(j) + " acked at offset " + off + ", want " + j + " (dense, in send order)");
                }
            }

            // 6. listOffsets
            Map<TopicPartition, OffsetSpec> early = new HashMap<>(), late = new HashMap<>();
            for (int p = 0; p < 2; p++) {
                early.put(new TopicPartition(topic, p), OffsetSpec.earliest());
                late.put(new TopicPartition(topic, p), OffsetSpec.latest());
            }
            var e0 = get("listOffsets earliest", admin.listOffsets(early).all());
            var l0 = get("listOffsets latest", admin.listOffsets(late).all());
            for (int p = 0; p < 2; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                long want = byPartition.getOrDefault(p, List.of()).size();
                check(e0.get(tp).offset() == 0, "listOffsets", tp + " earliest " + e0.get(tp).offset() + ", want 0");
                check(l0.get(tp).offset() == want, "listOffsets", tp + " latest " + l0.get(tp).offset() + ", want " + want);
            }

            // 7. consume: assign + seek, no group
            Properties cp2 = new Properties();
            cp2.putAll(common);
            cp2.put("key.deserializer", ByteArrayDeserializer.class.getName());
            cp2.put("value.deserializer", ByteArrayDeserializer.class.getName());
            cp2.put("enable.auto.commit", "false");
            cp2.put("auto.offset.reset", "none");
            cp2.put("isolation.level", "read_committed");
            Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new TreeMap<>();
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp2)) {
                List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
                consumer.assign(tps);
                for (TopicPartition tp : tps) consumer.seek(tp, 0);
                int n = 0;
                deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
                while (n < count && System.nanoTime() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                        got.computeIfAbsent(r.partition(), p -> new ArrayList<>()).add(r);
                        n++;
                    }
                }
                check(n == count, "consume", "read " + n + " of " + count + " records within " + TIMEOUT_S + "s");
            }
            for (Map.Entry<Integer, List<Integer>> e : byPartition.entrySet()) {
                int p = e.getKey();
                List<Integer> seqs = e.getValue();
                List<ConsumerRecord<byte[], byte[]>> rs = got.getOrDefault(p, List.of());
                check(rs.size() == seqs.size(), "consume", "partition " + p + ": read " + rs.size() + " records, want " + seqs.size());
                for (int j = 0; j < seqs.size(); j++) {
                    ConsumerRecord<byte[], byte[]> r = rs.get(j);
                    Sent s = sent.get(seqs.get(j));
                    String where = "partition " + p + " offset " + j + " (record " + seqs.get(j) + ")";
                    check(r.offset() == j, "consume", where + ": read offset " + r.offset());
                    check(Arrays.equals(r.key(), s.key()), "consume", where + ": key " + str(r.key()) + " != " + str(s.key()));
                    check(Arrays.equals(r.value(), s.value()), "consume", where + ": value " + str(r.value()) + " != " + str(s.value()));
                    Header[] hs = r.headers().toArray();
                    check(hs.length == s.headers().size(), "consume", where + ": " + hs.length + " headers, want " + s.headers().size());
                    for (int h = 0; h < hs.length; h++) {
                        Header want = s.headers().get(h);
                        check(hs[h].key().equals(want.key()) && Arrays.equals(hs[h].value(), want.value()), "consume",
                                where + ": header " + h + " " + hs[h].key() + "=" + Arrays.toString(hs[h].value()) + " != " + want.key() + "=" + Arrays.toString(want.value()));
                    }
                    check(r.timestampType() == org.apache.kafka.common.record.TimestampType.CREATE_TIME, "consume", where + ": timestamp type " + r.timestampType());
                    check(acked.get(seqs.get(j)).timestamp() == r.timestamp(), "consume", where + ": timestamp " + r.timestamp() + " != acked " + acked.get(seqs.get(j)).timestamp());
                }
            }

            // 8. createPartitions
            get("createPartitions", admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
            int parts = 0;
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (System.nanoTime() < deadline) {
                parts = get("describeTopics after createPartitions", admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size();
                if (parts == 3) break;
                Thread.sleep(100);
            }
            check(parts == 3, "createPartitions", "topic has " + parts + " partitions, want 3");

            // 9. deleteTopics
            get("deleteTopics", admin.deleteTopics(List.of(topic)).all());
            boolean gone = false;
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (System.nanoTime() < deadline) {
                if (!get("listTopics", admin.listTopics().names()).contains(topic)) {
                    gone = true;
                    break;
                }
                Thread.sleep(100);
            }
            check(gone, "deleteTopics", "topic still listed after deletion");

            System.out.println("interop-java: OK " + count + " records, topic " + topic + ", partitions used " + byPartition.keySet());
        }
    }
}

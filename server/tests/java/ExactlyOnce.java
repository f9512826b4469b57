// Consume-transform-produce exactly once with the Apache Kafka Java client (4.x), across a forced
// abort and a fenced zombie producer. Run by server/tests/transactions.rs, which creates and fills
// INPUT, creates OUTPUT, and afterwards checks OUTPUT with independent (librdkafka) consumers.
//
// Single-file source launch (Java 11+), with the jars scripts/install-interop.sh puts in
// .cache/kafka-tools/lib:
//
//   java -cp '.cache/kafka-tools/lib/*' server/tests/java/ExactlyOnce.java \
//        BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID
//
// What it does:
//   - a KafkaConsumer (group GROUP, read_committed, auto commit off, subscribe INPUT) and a
//     transactional KafkaProducer (TRANSACTIONAL_ID);
//   - loop: poll; begin; send one output record per input record (same key, value "done:" + the
//     input value) to OUTPUT; sendOffsetsToTransaction(next offsets, consumer.groupMetadata());
//     commit; until the positions committed cover the end offsets INPUT had at the start;
//   - batch ABORT_BATCH: sends half the batch, flushes (the records are in the log), aborts, seeks
//     the consumer back to its committed positions and redoes the work;
//   - batch FENCE_BATCH: sends half the batch, flushes, then a second producer with the same
//     transactional id calls initTransactions (which fences the first and aborts its open
//     transaction); the first (the zombie) sends once more and tries to commit; each exception it
//     gets is printed as `ZOMBIE_SEND_ERROR <class chain>` / `ZOMBIE_COMMIT_ERROR <class chain>`;
//     the second producer takes over after a seek back to the committed positions;
//   - at the end, AdminClient.listConsumerGroupOffsets(GROUP) is printed as `COMMITTED <p> <off>`,
//     the end offsets as `END <p> <off>`, and `ABORTED_RECORDS <n>` counts the output records sent
//     in transactions that did not commit;
//   - then OUTPUT is read back by Java consumers, read_committed and read_uncommitted, up to their
//     end offsets: `OUTPUT <isolation> <records> <distinct values>`.
// Exits 0 when the loop finished, 1 (printing why) on anything unexpected.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ExactlyOnce {
    /** How long the whole loop may take. */
    static final long LOOP_TIMEOUT_MS = 90_000;
    /** The batch (1-based count of non-empty polls) that is aborted on purpose. */
    static final int ABORT_BATCH = 2;
    /** The batch during which a second producer fences the first. */
    static final int FENCE_BATCH = 4;
    /** Records per poll: small, so that the input takes several transactions. */
    static final int MAX_POLL_RECORDS = 40;

    static void fail(String msg) {
        System.out.println("FAIL " + msg);
        System.out.flush();
        System.exit(1);
    }

    /** `Outer(msg) <- Cause(msg) ...`: the exception and its causes, classes named. */
    static String chain(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (sb.length() > 0) sb.append(" <- ");
            sb.append(c.getClass().getName()).append('(').append(c.getMessage()).append(')');
            if (c.getCause() == c) break;
        }
        return sb.toString();
    }

    static KafkaProducer<byte[], byte[]> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", txnId);
        p.put("client.id", txnId + "-" + System.nanoTime());
        p.put("transaction.timeout.ms", "20000");
        p.put("delivery.timeout.ms", "30000");
        p.put("request.timeout.ms", "10000");
        p.put("max.block.ms", "30000");
        p.put("linger.ms", "5");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p);
        prod.initTransactions();
        return prod;
    }

    /** Seeks every assigned partition back to the group's committed offset (or the beginning). */
    static void rewind(KafkaConsumer<byte[], byte[]> consumer) {
        Set<TopicPartition> assigned = consumer.assignment();
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned);
        for (TopicPartition tp : assigned) {
            OffsetAndMetadata om = committed.get(tp);
            if (om == null) {
                consumer.seekToBeginning(List.of(tp));
            } else {
                consumer.seek(tp, om.offset());
            }
        }
    }

    static List<Future<RecordMetadata>> sendAll(
            KafkaProducer<byte[], byte[]> prod, String output, List<ConsumerRecord<byte[], byte[]>> recs) {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : recs) {
            byte[] v = ("done:" + new String(r.value(), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
            fs.add(prod.send(new ProducerRecord<>(output, r.key(), v)));
        }
        return fs;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: ExactlyOnce.java BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID");
            System.exit(2);
        }
        String bootstrap = args[0], input = args[1], output = args[2], group = args[3], txnId = args[4];
        long t0 = System.currentTimeMillis();

        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", group);
        cp.put("isolation.level", "read_committed");
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("max.poll.records", Integer.toString(MAX_POLL_RECORDS));
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);

        List<TopicPartition> inputParts = new ArrayList<>();
        for (PartitionInfo pi : consumer.partitionsFor(input)) {
            inputParts.add(new TopicPartition(input, pi.partition()));
        }
        Map<TopicPartition, Long> end = consumer.endOffsets(inputParts);
        long total = end.values().stream().mapToLong(Long::longValue).sum();
        System.out.println("INPUT_RECORDS " + total);
        consumer.subscribe(List.of(input));

        KafkaProducer<byte[], byte[]> prod = producer(bootstrap, txnId);
        System.out.println("ELAPSED_MS init " + (System.currentTimeMillis() - t0));
        // What this program believes is committed: updated only after commitTransaction returned.
        Map<TopicPartition, Long> done = new HashMap<>();
        long abortedRecords = 0;
        int batch = 0;
        int commits = 0;
        boolean fenceSeen = false;
        long deadline = System.currentTimeMillis() + LOOP_TIMEOUT_MS;

        while (true) {
            boolean finished = true;
            for (TopicPartition tp : inputParts) {
                if (done.getOrDefault(tp, 0L) < end.get(tp)) finished = false;
            }
            if (finished) break;
            if (System.currentTimeMillis() > deadline) {
                fail("loop did not finish within " + LOOP_TIMEOUT_MS + " ms; committed " + done + ", end " + end);
            }
            ConsumerRecords<byte[], byte[]> polled = consumer.poll(Duration.ofMillis(200));
            if (polled.isEmpty()) continue;
            batch++;
            List<ConsumerRecord<byte[], byte[]>> recs = new ArrayList<>();
            polled.forEach(recs::add);
            Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
            for (TopicPartition tp : polled.partitions()) {
                List<ConsumerRecord<byte[], byte[]>> l = polled.records(tp);
                next.put(tp, new OffsetAndMetadata(l.get(l.size() - 1).offset() + 1));
            }

            if (batch == ABORT_BATCH) {
                prod.beginTransaction();
                List<ConsumerRecord<byte[], byte[]>> half = recs.subList(0, Math.max(1, recs.size() / 2));
                for (Future<RecordMetadata> f : sendAll(prod, output, half)) f.get(30, TimeUnit.SECONDS);
                abortedRecords += half.size();
                prod.abortTransaction();
                System.out.println("ABORTED batch " + batch + " after " + half.size() + " records");
                rewind(consumer);
                continue;
            }

            if (batch == FENCE_BATCH) {
                prod.beginTransaction();
                List<ConsumerRecord<byte[], byte[]>> half = recs.subList(0, Math.max(1, recs.size() / 2));
                for (Future<RecordMetadata> f : sendAll(prod, output, half)) f.get(30, TimeUnit.SECONDS);
                abortedRecords += half.size();
                // A new instance of the same application: its initTransactions fences the first
                // producer and aborts the first one's open transaction.
                KafkaProducer<byte[], byte[]> successor = producer(bootstrap, txnId);
                System.out.println("SUCCESSOR initialized during batch " + batch);
                // The zombie goes on as if nothing happened.
                List<ConsumerRecord<byte[], byte[]>> rest = recs.subList(half.size(), recs.size());
                boolean zombieFailed = false;
                try {
                    for (Future<RecordMetadata> f : sendAll(prod, output, rest)) f.get(30, TimeUnit.SECONDS);
                    System.out.println("ZOMBIE_SEND_OK " + rest.size());
                } catch (Exception e) {
                    zombieFailed = true;
                    Throwable t = e instanceof ExecutionException ? e.getCause() : e;
                    System.out.println("ZOMBIE_SEND_ERROR " + chain(t));
                    if (t instanceof ProducerFencedException) fenceSeen = true;
                }
                try {
                    prod.sendOffsetsToTransaction(next, consumer.groupMetadata());
                    prod.commitTransaction();
                    System.out.println("ZOMBIE_COMMIT_OK");
                } catch (Exception e) {
                    zombieFailed = true;
                    System.out.println("ZOMBIE_COMMIT_ERROR " + chain(e));
                    if (e instanceof ProducerFencedException) {
                        fenceSeen = true;
                    } else {
                        // Not fatal by itself (e.g. InvalidProducerEpochException is abortable):
                        // what an application does then is abort, which must now be refused.
                        try {
                            prod.abortTransaction();
                            System.out.println("ZOMBIE_ABORT_OK");
                        } catch (Exception a) {
                            System.out.println("ZOMBIE_ABORT_ERROR " + chain(a));
                            if (a instanceof ProducerFencedException) fenceSeen = true;
                        }
                    }
                }
                if (!zombieFailed) fail("the zombie producer committed after being fenced");
                try {
                    prod.close(Duration.ofSeconds(5));
                } catch (Exception e) {
                    System.out.println("ZOMBIE_CLOSE_ERROR " + chain(e));
                }
                prod = successor;
                rewind(consumer);
                continue;
            }

            prod.beginTransaction();
            for (Future<RecordMetadata> f : sendAll(prod, output, recs)) f.get(30, TimeUnit.SECONDS);
            prod.sendOffsetsToTransaction(next, consumer.groupMetadata());
            prod.commitTransaction();
            commits++;
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : next.entrySet()) {
                done.put(e.getKey(), e.getValue().offset());
            }
        }
        System.out.println("ELAPSED_MS loop " + (System.currentTimeMillis() - t0));
        System.out.println("COMMITS " + commits + " BATCHES " + batch);
        System.out.println("ABORTED_RECORDS " + abortedRecords);
        System.out.println("FENCE_SEEN " + fenceSeen);
        prod.close(Duration.ofSeconds(10));
        consumer.close(Duration.ofSeconds(10));

        Properties ap = new Properties();
        ap.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(ap)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            for (TopicPartition tp : inputParts) {
                OffsetAndMetadata om = committed.get(tp);
                System.out.println("COMMITTED " + tp.partition() + " " + (om == null ? -1 : om.offset()));
                System.out.println("END " + tp.partition() + " " + end.get(tp));
            }
        }
        System.out.println("ELAPSED_MS offsets " + (System.currentTimeMillis() - t0));
        readBack(bootstrap, output, "read_committed");
        readBack(bootstrap, output, "read_uncommitted");
        System.out.println("ELAPSED_MS read-back " + (System.currentTimeMillis() - t0));
        System.out.println("DONE");
    }

    /**
     * Reads all of OUTPUT with the Java consumer at `isolation` (its own handling of aborted
     * transactions and control records) up to its end offsets (the LSO for read_committed) and
     * prints `OUTPUT <isolation> <records> <distinct values>`.
     */
    static void readBack(String bootstrap, String output, String isolation) {
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("isolation.level", isolation);
        cp.put("enable.auto.commit", "false");
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(output)) {
                parts.add(new TopicPartition(output, pi.partition()));
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts);
            long count = 0;
            Set<String> distinct = new HashSet<>();
            long deadline = System.currentTimeMillis() + 30_000;
            while (true) {
                boolean atEnd = true;
                for (TopicPartition tp : parts) {
                    if (c.position(tp) < end.get(tp)) atEnd = false;
                }
                if (atEnd) break;
                if (System.currentTimeMillis() > deadline) {
                    fail(isolation + " read-back of " + output + " did not reach " + end);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    count++;
                    distinct.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
            System.out.println("OUTPUT " + isolation + " " + count + " " + distinct.size());
        }
    }
}

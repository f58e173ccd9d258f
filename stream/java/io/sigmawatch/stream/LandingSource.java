package io.sigmawatch.stream;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.FileSourceSplitSerializer;
import org.apache.flink.connector.file.src.PendingSplitsCheckpoint;
import org.apache.flink.connector.file.src.PendingSplitsCheckpointSerializer;
import org.apache.flink.connector.file.src.enumerate.FileEnumerator;
import org.apache.flink.connector.file.src.enumerate.NonSplittingRecursiveEnumerator;
import org.apache.flink.connector.file.table.DeserializationSchemaAdapter;
import org.apache.flink.core.fs.Path;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.formats.common.TimestampFormat;
import org.apache.flink.formats.json.JsonRowDataDeserializationSchema;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;

/**
 * The landing directory as a source of rows: Flink's file source reading the bridges' JSON lines (the same json
 * decoding as the SQL filesystem connector), with an enumerator of our own for two reasons.
 *
 * <ul>
 *   <li>Bounded state. Flink's continuous enumerator remembers every file it has ever read (its checkpoint grows by
 *       ~100 bytes per landing file, forever). The bridges delete the landing files the job has consumed, so this
 *       enumerator remembers only the files it still sees in the directory: a file read and then deleted is
 *       forgotten at the next scan. Landing file names are unique (time, bridge, counter), so a name never comes
 *       back.</li>
 *   <li>Landing order. New files are handed out oldest first (their names start with the landing time in ms), so
 *       a backlog (the job restarted, started after the bridges, a bounded replay) is read in the order it
 *       landed: far fewer frames arrive behind the watermark than with the default enumerator's arbitrary
 *       order.</li>
 * </ul>
 */
public final class LandingSource
        implements Source<RowData, FileSourceSplit, PendingSplitsCheckpoint<FileSourceSplit>>,
                ResultTypeQueryable<RowData> {
    private static final long serialVersionUID = 1L;

    private final String directory;
    private final long monitorIntervalMillis;     // 0 = bounded: read what is there, then finish
    private final FileSource<RowData> files;      // the reader side (Flink's), over the same format

    LandingSource(String directory, long monitorIntervalMillis, String rowType) {
        this.directory = directory;
        this.monitorIntervalMillis = monitorIntervalMillis;
        RowType type = (RowType) LogicalTypeParser.parse(rowType, LandingSource.class.getClassLoader());
        JsonRowDataDeserializationSchema json = new JsonRowDataDeserializationSchema(
                type, InternalTypeInfo.of(type), false, true, TimestampFormat.ISO_8601);
        this.files = FileSource.forBulkFileFormat(new DeserializationSchemaAdapter(json), new Path(directory)).build();
    }

    /** The job's entry point (called from Python through Py4J). */
    public static DataStream<RowData> apply(StreamExecutionEnvironment env, String directory,
                                            long monitorIntervalMillis, String rowType) {
        return env.fromSource(new LandingSource(directory, monitorIntervalMillis, rowType),
                        WatermarkStrategy.noWatermarks(), "landing files")
                .uid("landing-files");
    }

    @Override
    public Boundedness getBoundedness() {
        return monitorIntervalMillis > 0 ? Boundedness.CONTINUOUS_UNBOUNDED : Boundedness.BOUNDED;
    }

    @Override
    public SourceReader<RowData, FileSourceSplit> createReader(SourceReaderContext context) throws Exception {
        return files.createReader(context);
    }

    @Override
    public SplitEnumerator<FileSourceSplit, PendingSplitsCheckpoint<FileSourceSplit>> createEnumerator(
            SplitEnumeratorContext<FileSourceSplit> context) {
        return new Enumerator(context, new Path(directory), monitorIntervalMillis, List.of(), List.of());
    }

    @Override
    public SplitEnumerator<FileSourceSplit, PendingSplitsCheckpoint<FileSourceSplit>> restoreEnumerator(
            SplitEnumeratorContext<FileSourceSplit> context, PendingSplitsCheckpoint<FileSourceSplit> checkpoint) {
        return new Enumerator(context, new Path(directory), monitorIntervalMillis, checkpoint.getSplits(),
                checkpoint.getAlreadyProcessedPaths());
    }

    @Override
    public SimpleVersionedSerializer<FileSourceSplit> getSplitSerializer() {
        return FileSourceSplitSerializer.INSTANCE;
    }

    @Override
    public SimpleVersionedSerializer<PendingSplitsCheckpoint<FileSourceSplit>> getEnumeratorCheckpointSerializer() {
        return new PendingSplitsCheckpointSerializer<>(FileSourceSplitSerializer.INSTANCE);
    }

    @Override
    public TypeInformation<RowData> getProducedType() {
        return files.getProducedType();
    }

    /** Scans the directory, hands out new files oldest first, remembers only the files it still sees. */
    static final class Enumerator implements SplitEnumerator<FileSourceSplit, PendingSplitsCheckpoint<FileSourceSplit>> {
        private static final Comparator<FileSourceSplit> BY_NAME =
                Comparator.comparing((FileSourceSplit s) -> s.path().getName());

        private final SplitEnumeratorContext<FileSourceSplit> context;
        private final Path directory;
        private final long intervalMillis;
        private final FileEnumerator files = new NonSplittingRecursiveEnumerator();  // skips hidden . and _ files
        private final ArrayDeque<FileSourceSplit> pending = new ArrayDeque<>();
        private final Set<Path> known = new HashSet<>();       // files handed out or pending, still in the directory
        private final Map<Integer, String> waiting = new LinkedHashMap<>();
        private boolean scanned;                               // bounded: the one scan is done

        Enumerator(SplitEnumeratorContext<FileSourceSplit> context, Path directory, long intervalMillis,
                   Collection<FileSourceSplit> pending, Collection<Path> known) {
            this.context = context;
            this.directory = directory;
            this.intervalMillis = intervalMillis;
            List<FileSourceSplit> sorted = new ArrayList<>(pending);
            sorted.sort(BY_NAME);
            this.pending.addAll(sorted);
            this.known.addAll(known);
        }

        @Override
        public void start() {
            if (intervalMillis > 0) {
                context.callAsync(this::scan, this::discovered, 0, intervalMillis);
            } else {
                context.callAsync(this::scan, this::discovered);
            }
        }

        /**
         * One listing of the directory. Listing a directory and reading each entry's status are two steps: a
         * bridge renaming its temporary file, or deleting a consumed one, in between makes the file vanish
         * (FileNotFoundException). That is no error: the listing is taken again (a continuous scan skips the
         * round after a few tries, the next one is 0.2 s away; the bounded scan must succeed).
         */
        private Collection<FileSourceSplit> scan() throws IOException {
            for (int attempt = 1; ; attempt++) {
                try {
                    return files.enumerateSplits(new Path[] {directory}, 1);
                } catch (FileNotFoundException vanished) {
                    if (!directory.getFileSystem().exists(directory)) {
                        throw vanished;                  // the directory itself is gone: that is an error
                    }
                    if (intervalMillis > 0 && attempt >= 5) {
                        return null;                     // skip this round
                    }
                    if (attempt >= 1000) {
                        throw vanished;
                    }
                }
            }
        }

        private void discovered(Collection<FileSourceSplit> listed, Throwable error) {
            if (error != null) {
                throw new RuntimeException("cannot list the landing directory " + directory, error);
            }
            if (listed == null) {
                return;                                  // files moved while listed: the next scan sees them
            }
            Set<Path> present = new HashSet<>();
            List<FileSourceSplit> fresh = new ArrayList<>();
            for (FileSourceSplit split : listed) {
                present.add(split.path());
                if (!known.contains(split.path())) {
                    fresh.add(split);
                }
            }
            known.retainAll(present);             // read and deleted since: forgotten (bounded state)
            for (FileSourceSplit split : pending) {
                known.add(split.path());            // pending ones stay known even if listed late
            }
            fresh.sort(BY_NAME);
            for (FileSourceSplit split : fresh) {
                known.add(split.path());
                pending.add(split);
            }
            scanned = true;
            assign();
        }

        private void assign() {
            var it = waiting.entrySet().iterator();
            while (it.hasNext()) {
                var reader = it.next();
                if (!context.registeredReaders().containsKey(reader.getKey())) {
                    it.remove();
                    continue;
                }
                FileSourceSplit next = pending.poll();
                if (next != null) {
                    context.assignSplit(next, reader.getKey());
                    it.remove();
                } else if (intervalMillis == 0 && scanned) {
                    context.signalNoMoreSplits(reader.getKey());
                    it.remove();
                } else {
                    break;
                }
            }
        }

        @Override
        public void handleSplitRequest(int subtask, String host) {
            waiting.put(subtask, host);
            assign();
        }

        @Override
        public void addSplitsBack(List<FileSourceSplit> splits, int subtask) {
            List<FileSourceSplit> back = new ArrayList<>(splits);
            back.sort(BY_NAME.reversed());
            for (FileSourceSplit split : back) {
                pending.addFirst(split);
            }
        }

        @Override
        public void addReader(int subtask) {
            // readers ask for splits themselves (handleSplitRequest)
        }

        @Override
        public PendingSplitsCheckpoint<FileSourceSplit> snapshotState(long checkpointId) {
            return PendingSplitsCheckpoint.fromCollectionSnapshot(new ArrayList<>(pending), new ArrayList<>(known));
        }

        @Override
        public void close() {
            // nothing to release: the coordinator stops the periodic scan
        }
    }
}

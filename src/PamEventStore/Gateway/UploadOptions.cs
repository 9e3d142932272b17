namespace PamEventStore.Gateway;

/// <summary>Limits on what gateways upload (configuration section <c>Uploads</c>).</summary>
public sealed class UploadOptions
{
    public const string Section = "Uploads";

    /// <summary>The most either body limit may be set to (1 GiB): a body is read whole into memory.</summary>
    public const int MaxBodyBytes = 1024 * 1024 * 1024;

    /// <summary>The longest <see cref="EndedSessionGrace"/> may be: a month.</summary>
    public static readonly TimeSpan MaxEndedSessionGrace = TimeSpan.FromDays(30);

    /// <summary>
    /// Largest accepted event batch: 1 MiB, what Infisical's platform takes (its server's default body
    /// limit). Its gateway sends everything recorded since its last acknowledged offset, uncapped, and
    /// sends it again from the same offset after any refusal, so a batch refused for its size only grows.
    /// </summary>
    public int MaxBatchBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest legacy bulk upload: a whole session at once.</summary>
    public int MaxLegacyLogsBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>
    /// Whether recorded content is compressed before it is encrypted (<see cref="Crypto.PackedContent"/>):
    /// less than half the disk and WAL, at the price of each stored batch's length telling a reader of the
    /// database how well its content compressed. Content already stored reads either way.
    /// </summary>
    public bool CompressContent { get; set; } = true;

    /// <summary>How long after a session ended its gateway may still deliver the final flush.</summary>
    public TimeSpan EndedSessionGrace { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// Groups of uploads written side by side (<see cref="UploadCommits"/>), each on one PostgreSQL
    /// connection. At least two, so that a group waiting on a stream lock (a session being ended, or
    /// written by another node) does not hold up every other upload; one more per two cores above four.
    /// On two cores, one writer and two measured the same throughput (BENCHMARKS.md).
    /// </summary>
    public int CommitWriters { get; set; } = Math.Max(2, Environment.ProcessorCount / 2);

    /// <summary>
    /// Most bytes of event batches a node holds at once, from reading to commit (<see cref="UploadAdmission"/>);
    /// an upload past it is answered 503 before its body is read. Each held byte stands for a few in memory
    /// (the body, its parsed and canonical forms, the ciphertext and the event written). At 6 KB a batch, the
    /// default is several seconds of a busy node's uploads. Legacy <c>/logs</c> uploads take turns instead
    /// (<see cref="LegacyLogsAtOnce"/>).
    /// </summary>
    public long MaxBytesInFlight { get; set; } = 32 * 1024 * 1024;

    /// <summary>
    /// Most of <see cref="MaxBytesInFlight"/> that the uploads of one gateway (of one org) may hold at once;
    /// past it, that gateway's next upload is answered 503 <c>busy</c> while every other gateway's are still
    /// taken. So no gateway, however many uploads it holds open (a stalled link, or a stolen gateway token
    /// trickling bodies), takes the node's whole share from the others. The first upload of a gateway that
    /// holds nothing is always let in, as far as the node's limit allows. The default is eight of the
    /// largest batches, and far above what a gateway holds while its node keeps up (a few batches of a few KB).
    /// </summary>
    public long MaxBytesInFlightPerGateway { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// Slowest an event batch's body may arrive, after a grace of <see cref="BatchGrace"/>: its share of
    /// <see cref="MaxBytesInFlight"/> is held from before its body is read, so a body that trickles is cut
    /// off (408, nothing stored) instead of holding it for minutes at the server's default pace (240 bytes/s).
    /// Measured as for <see cref="LegacyLogsMinBytesPerSecond"/>: a batch of the largest size must be in
    /// within the grace and 64 s at the default.
    /// </summary>
    public int BatchMinBytesPerSecond { get; set; } = 16 * 1024;

    /// <summary>How long an event batch's body may be slow at first before <see cref="BatchMinBytesPerSecond"/> applies (more than a second).</summary>
    public TimeSpan BatchGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Legacy <c>/logs</c> uploads a node reads and stores at once. Each is a whole recording of up to
    /// <see cref="MaxLegacyLogsBytes"/>, so they are counted in turns, not against <see cref="MaxBytesInFlight"/>
    /// (one alone would fill it); the next one waits for a turn before its body is read.
    /// </summary>
    public int LegacyLogsAtOnce { get; set; } = 2;

    /// <summary>How long a legacy upload waits for its turn before it is answered 503 <c>busy</c>.</summary>
    public TimeSpan LegacyLogsWait { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Legacy uploads that may wait for a turn at once; the next is answered 503 <c>busy</c> without waiting.
    /// Each one waiting holds its connection and what the server buffers of its body (up to 1 MiB).
    /// </summary>
    public int LegacyLogsWaiting { get; set; } = 16;

    /// <summary>
    /// Slowest a legacy upload's body may arrive once it has its turn, after a grace of
    /// <see cref="LegacyLogsGrace"/>: a gateway that stalls or trickles is cut off (408, nothing stored)
    /// instead of keeping its turn from the others. Over HTTP/1.x the pace is measured as the body arrives
    /// and a slow one's connection closed; on any protocol the body must be in by the grace plus its
    /// declared length (or <see cref="MaxLegacyLogsBytes"/>) at this pace (<see cref="Http.RequestBody.ReadPacedAsync"/>).
    /// At the defaults a turn is held at most about 8.5 minutes, for 32 MiB.
    /// </summary>
    public int LegacyLogsMinBytesPerSecond { get; set; } = 64 * 1024;

    /// <summary>How long a legacy upload's body may be slow at first before <see cref="LegacyLogsMinBytesPerSecond"/> applies (more than a second).</summary>
    public TimeSpan LegacyLogsGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Longest an upload waits for a writer to take it into a transaction (<see cref="UploadCommits"/>); past
    /// it, it is answered 503 <c>database-unavailable</c> and dropped, nothing stored. Writers are only that
    /// slow when the database stalls (a frozen server, a lost route): each of them then holds its group
    /// until its command times out, and without this the uploads queued behind waited one command timeout
    /// after another. At most <see cref="MaxBytesInFlight"/> waits, which a node that keeps up writes in a few seconds.
    /// </summary>
    public TimeSpan CommitWait { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most sessions one transaction decides and commits together.</summary>
    public int MaxSessionsPerCommit { get; set; } = 32;
}

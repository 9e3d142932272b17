using System.Diagnostics.Metrics;
using System.Threading.Channels;
using JasperFx.Events;
using Marten;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using PamEventStore.Viewing;

namespace PamEventStore.Gateway;

/// <summary>
/// An upload checked, read and parsed, its org's keys resolved: all it still needs is its session.
/// <paramref name="Held"/> is its share of the node's upload limit, given back once it is decided or dropped.
/// </summary>
public sealed record ReadyUpload(Guid SessionId, Caller Caller, IncomingBatch Batch, OrgSealing Sealing, IDisposable? Held = null)
{
    /// <summary>
    /// The batch's content packed for sealing on the request's thread, so that the writers, which hold
    /// the sessions' locks, only encrypt it. Null: packed by the writer.
    /// </summary>
    public PackedContent? Packed { get; init; }
}

/// <summary>What became of an upload once its session decided it (and that decision was committed).</summary>
public abstract record UploadOutcome
{
    /// <param name="Sequence">The batch's number in the session.</param>
    public sealed record Stored(long Sequence) : UploadOutcome
    {
        /// <summary>Where the session's chain stands with the batch stored: what the gateway is answered, to keep.</summary>
        public ChainPosition? Chain { get; init; }
    }

    public sealed record AlreadyStored : UploadOutcome;

    public sealed record Refused(Rejection Reason) : UploadOutcome;

    public sealed record NoSuchSession : UploadOutcome;

    public sealed record OtherGateway : UploadOutcome;

    /// <summary>No writer took it in time (the database stalls): dropped, nothing stored.</summary>
    public sealed record NotTaken : UploadOutcome;
}

/// <summary>
/// Group commit of uploads. Uploads that arrive while others are being written wait for the next
/// transaction together, up to <see cref="UploadOptions.MaxSessionsPerCommit"/> sessions (a transaction
/// per org, each org being its own tenant). Their snapshots are read in one round trip, without locks;
/// each session decides its upload on its own, and what they decided is appended in one more, with one
/// WAL flush for the group (<see cref="GuardedAppends"/>), guarded by the version each was decided at. If
/// another writer (a node, an end of session) moved one of the streams meanwhile, nothing is written and
/// the group is decided again through Marten, under its streams' row locks. An upload alone goes through just as fast as on
/// its own. If a group fails as a whole, each of its uploads is tried again in a transaction of its own,
/// so one session's failure is never another's.
/// </summary>
/// <remarks>
/// <see cref="UploadOptions.CommitWriters"/> writers take groups from one queue: while one waits for
/// its commit, the next takes what arrived meanwhile. A session is in one group at a time, so its
/// uploads are decided in the order they came, each seeing what the one before it stored, and two
/// writers never wait on each other's streams. Streams within a group are locked in id order, on either
/// path, so groups on different nodes cannot deadlock either.
/// </remarks>
public sealed class UploadCommits : IAsyncDisposable
{
    /// <summary>The meter of <c>pam.uploads.sessions_per_commit</c> (e.g. <c>dotnet-counters monitor --counters PamEventStore.Uploads</c>).</summary>
    public const string MeterName = "PamEventStore.Uploads";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Histogram<int> SessionsPerCommit = Meter.CreateHistogram<int>("pam.uploads.sessions_per_commit", "{session}", "Sessions whose uploads one transaction decided and committed");

    private readonly IDocumentStore _store;
    private readonly RecordingCipher _cipher;
    private readonly SessionSignals _signals;
    private readonly TimeProvider _clock;
    private readonly ILogger<UploadCommits> _logger;
    private readonly UploadOptions _options;
    private readonly Channel<WaitingUpload> _queue = Channel.CreateUnbounded<WaitingUpload>();
    private readonly Lock _taking = new();
    private readonly List<WaitingUpload> _held = [];
    private readonly HashSet<(string OrgId, Guid SessionId)> _writing = [];
    private readonly Task[] _writers;

    /// <summary>Transactions of different orgs one writer runs at once.</summary>
    private const int TransactionsPerWriter = 4;

    public UploadCommits(IDocumentStore store, RecordingCipher cipher, TimeProvider clock, IOptions<UploadOptions> options, ILogger<UploadCommits> logger, SessionSignals signals)
    {
        _store = store;
        _cipher = cipher;
        _signals = signals;
        _clock = clock;
        _logger = logger;
        _options = options.Value;
        _writers = Enumerable.Range(0, Math.Max(1, _options.CommitWriters)).Select(_ => Task.Run(WriteGroupsAsync)).ToArray();
    }

    /// <summary>
    /// Decides and commits the upload with whatever else is waiting; the outcome once it is durable, or
    /// <see cref="UploadOutcome.NotTaken"/> when no writer took it within <see cref="UploadOptions.CommitWait"/>.
    /// </summary>
    public async Task<UploadOutcome> CommitAsync(ReadyUpload upload, CancellationToken ct)
    {
        // A caller that goes away before its upload is taken into a group takes it away with it, as a
        // request cancelled before its transaction would; once taken, it is decided and committed with its
        // group (should the group fail as a whole, it is tried again alone only while its caller still waits).
        // Its share of the node's limit stays held while it waits in memory, even once its caller is gone.
        var waiting = new WaitingUpload(upload, ct);
        if (!_queue.Writer.TryWrite(waiting)) return await CommitAloneAsync(upload);

        // Real time, not the sessions' clock: how long a caller waits, not when something happened. The
        // caller wakes once, for its outcome: that it was not taken in time is one. Once a writer took it,
        // its outcome is awaited as any other's.
        using var wait = new CancellationTokenSource(_options.CommitWait);
        await using var notTaken = wait.Token.Register(static state => ((WaitingUpload)state!).GiveUpIfWaiting(), waiting);
        return await waiting.Outcome.Task.WaitAsync(ct);
    }

    private async Task<UploadOutcome> CommitAloneAsync(ReadyUpload upload)
    {
        using (upload.Held) return (await CommitGroupAsync(upload.Caller.OrgId, [upload]))[0];
    }

    private async Task CommitAsync(IReadOnlyList<WaitingUpload> group)
    {
        try
        {
            var outcomes = await CommitGroupAsync(group[0].Upload.Caller.OrgId, group.Select(w => w.Upload).ToArray());
            for (var i = 0; i < group.Count; i++) group[i].Settle(outcomes[i]);
        }
        catch (Exception failure) when (group.Count > 1 && !DatabaseFailures.IsUnavailable(failure))
        {
            // Nothing of the group was committed: each upload on its own, so each gets its own answer.
            // When the database itself failed, each would only fail again, one timeout after another.
            _logger.LogWarning(failure, "A transaction of {Count} sessions' uploads failed; each is retried in a transaction of its own", group.Count);
            foreach (var waiting in group.Where(w => !w.Abandoned.IsCancellationRequested)) await CommitAsync([waiting]);
            foreach (var waiting in group) waiting.Drop();
        }
        catch (Exception failure)
        {
            // The database, not an upload, failed (or there was only one): each of them would fail the same alone.
            foreach (var waiting in group) waiting.Fail(failure);
        }
    }

    /// <returns>The outcome of each upload, in the order given; all of one org, each of another session.</returns>
    private async Task<UploadOutcome[]> CommitGroupAsync(string orgId, ReadyUpload[] uploads)
    {
        await using var db = _store.LightweightSession(orgId);
        UploadOutcome[] outcomes;
        try
        {
            outcomes = await CommitGuardedAsync(db, uploads);
        }
        catch (StreamMovedException moved)
        {
            // Another writer appended to one of these sessions after the snapshot its upload was decided on
            // (a node, an end of session): nothing was written. Each is decided again, under its stream's lock.
            _logger.LogInformation(moved, "A session's stream moved on while {Count} uploads were decided; they are decided again under their streams' locks", uploads.Length);
            outcomes = await CommitLockedAsync(db, uploads);
        }

        // Live tails of these sessions read what was stored now, not at their next poll.
        for (var i = 0; i < uploads.Length; i++)
        {
            if (outcomes[i] is UploadOutcome.Stored) _signals.Signal(orgId, uploads[i].SessionId);
        }

        SessionsPerCommit.Record(uploads.Length);
        return outcomes;
    }

    /// <summary>
    /// The group's snapshots read in one round trip, without locks, each upload decided on its session's, and
    /// what they decided appended in one more (<see cref="GuardedAppends"/>): refused as a whole if any
    /// stream has moved on meanwhile.
    /// </summary>
    private async Task<UploadOutcome[]> CommitGuardedAsync(IDocumentSession db, ReadyUpload[] uploads)
    {
        var batch = db.CreateBatchQuery();
        var snapshots = uploads.Select(upload => batch.Load<PamSession>(upload.SessionId)).ToArray();
        await batch.Execute();

        var now = _clock.GetUtcNow();
        var outcomes = new UploadOutcome[uploads.Length];
        var appends = new List<SessionAppend>();
        for (var i = 0; i < uploads.Length; i++)
        {
            var session = await snapshots[i];
            var (outcome, linked) = await DecideAsync(db, session, session?.Version ?? 0, uploads[i], now);
            outcomes[i] = outcome;
            if (linked.Length > 0) appends.Add(new SessionAppend(session!, linked));
        }

        if (appends.Count > 0) await GuardedAppends.WriteAsync(db, appends, CancellationToken.None);
        return outcomes;
    }

    /// <summary>The group decided under its streams' row locks, taken in one round trip in id order, and saved through Marten's unit of work.</summary>
    private async Task<UploadOutcome[]> CommitLockedAsync(IDocumentSession db, ReadyUpload[] uploads)
    {
        var batch = db.CreateBatchQuery();
        var streams = uploads
            .Select((upload, index) => (upload, index))
            .OrderBy(x => x.upload.SessionId)
            .Select(x => (x.index, Stream: batch.Events.FetchForExclusiveWriting<PamSession>(x.upload.SessionId)))
            .ToArray();
        await batch.Execute();

        var now = _clock.GetUtcNow();
        var outcomes = new UploadOutcome[uploads.Length];
        var appended = false;
        foreach (var (index, fetched) in streams)
        {
            var stream = await fetched;
            var (outcome, linked) = await DecideAsync(db, stream.Aggregate, stream.StartingVersion ?? 0, uploads[index], now);
            outcomes[index] = outcome;
            if (linked.Length > 0) stream.AppendMany(linked);
            appended |= linked.Length > 0;
        }

        if (appended) await db.SaveChangesAsync();
        return outcomes;
    }

    /// <summary>
    /// The session, as stored at <paramref name="version"/>, decides the upload; what it decides to record
    /// comes back linked onto its chain, to be appended at that version.
    /// </summary>
    private async Task<(UploadOutcome Outcome, SessionEvent[] Linked)> DecideAsync(IQuerySession db, PamSession? session, long version, ReadyUpload upload, DateTimeOffset now)
    {
        if (session is null || !upload.Caller.CanSeeProject(session.ProjectId)) return (new UploadOutcome.NoSuchSession(), []);
        if (!upload.Caller.IsGatewayOf(session)) return (new UploadOutcome.OtherGateway(), []);

        var (startOffset, sessionId, caller) = (upload.Batch.StartOffset, upload.SessionId, upload.Caller);
        var storedEntries = BatchUploadRules.NeedsStoredSegments(session, startOffset)
            ? await RecordedBatch.StoredAtAsync(db, sessionId, startOffset, session.BatchCount, CancellationToken.None)
            : null;
        var storedAtOffset = storedEntries?.Select(s => s.Segment).ToList();

        if (BatchUploadRules.MayBeStoredPrefix(session, upload.Batch, storedAtOffset)
            && await OvertakenUploads.BeginWhatIsStoredAsync(db, _cipher, caller.OrgId, sessionId, session, upload.Batch, storedEntries, CancellationToken.None))
        {
            return (new UploadOutcome.AlreadyStored(), []);
        }

        SessionEvent[] Linked(IEnumerable<SessionEvent> events) => upload.Sealing.Chain.Extend(caller.OrgId, sessionId, version, session.ChainHead, events);

        switch (BatchUploadRules.Decide(session, upload.Batch, storedAtOffset, caller.AsActor(), now, _options.EndedSessionGrace))
        {
            case AcceptBatch accept:
                var place = new BatchPlace(caller.OrgId, sessionId, accept.Batch.Sequence, accept.Batch.StartOffset);
                // A batch stored from its middle (its first events were stored before) is packed here, as what it holds.
                var packed = ReferenceEquals(accept.Content, upload.Batch.Content) && upload.Packed is { } whole ? whole : PackedContent.Pack(accept.Content.Canonical.Span, _options.CompressContent);
                var sealedContent = RecordingCipher.Seal(upload.Sealing, place, packed);
                var stored = Linked(accept.Events(accept.Batch.SealedAs(sealedContent)));
                return (new UploadOutcome.Stored(accept.Batch.Sequence) { Chain = new ChainPosition(version + stored.Length, stored[^1].Link!) }, stored);

            case RejectBatch reject:
                return (new UploadOutcome.Refused(reject.Reason), Linked(reject.Events()));

            default:
                return (new UploadOutcome.AlreadyStored(), []);
        }
    }

    private async Task WriteGroupsAsync()
    {
        while (true)
        {
            var group = TakeGroup();
            if (group.Count > 0)
            {
                try
                {
                    // A transaction per org (each org is its own tenant), a few side by side: a group of
                    // many orgs' uploads must not take every pooled connection at once.
                    await Parallel.ForEachAsync(
                        group.GroupBy(w => w.Upload.Caller.OrgId, StringComparer.Ordinal),
                        new ParallelOptions { MaxDegreeOfParallelism = TransactionsPerWriter },
                        async (org, _) => await CommitAsync(org.ToList()));
                }
                catch (Exception failure)
                {
                    // CommitAsync answers every upload itself; should anything else fail, no upload waits forever.
                    _logger.LogError(failure, "A group of {Count} uploads failed outside its transactions", group.Count);
                    foreach (var waiting in group) waiting.Fail(failure);
                }
                finally
                {
                    lock (_taking)
                    {
                        foreach (var waiting in group) _writing.Remove(Key(waiting));
                    }
                }

                continue;
            }

            // Nothing to take but uploads of sessions being written: the writer of each takes them next.
            if (!await _queue.Reader.WaitToReadAsync()) return;
        }
    }

    /// <summary>
    /// The uploads held back and then those queued, in the order they came, at most one per session and
    /// none of a session being written; the others are held for a later group.
    /// </summary>
    private List<WaitingUpload> TakeGroup()
    {
        var group = new List<WaitingUpload>();
        lock (_taking)
        {
            var passed = new HashSet<(string, Guid)>();
            var held = _held.ToArray();
            _held.Clear();
            foreach (var waiting in held) Take(waiting);
            while (group.Count < _options.MaxSessionsPerCommit && _queue.Reader.TryRead(out var waiting)) Take(waiting);

            void Take(WaitingUpload waiting)
            {
                if (waiting.Abandoned.IsCancellationRequested)
                {
                    waiting.Drop();
                    return;
                }

                var key = Key(waiting);
                if (group.Count < _options.MaxSessionsPerCommit && !passed.Contains(key) && !_writing.Contains(key))
                {
                    // Its caller gave up waiting for a writer: dropped as if it had gone away.
                    if (!waiting.TryTake())
                    {
                        waiting.Drop();
                        return;
                    }

                    _writing.Add(key);
                    group.Add(waiting);
                }
                else
                {
                    passed.Add(key);
                    _held.Add(waiting);
                }
            }
        }

        return group;
    }

    private static (string OrgId, Guid SessionId) Key(WaitingUpload waiting) => (waiting.Upload.Caller.OrgId, waiting.Upload.SessionId);

    /// <summary>
    /// What is queued is still written. The host disposes this once it has stopped serving requests;
    /// an upload after that (a tool, a test) commits on its own, outside any group.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_writers);
    }

    private sealed record WaitingUpload(ReadyUpload Upload, CancellationToken Abandoned)
    {
        public TaskCompletionSource<UploadOutcome> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private int _state; // 0 waiting, 1 taken by a writer, 2 given up by its caller

        /// <summary>A writer takes it, unless its caller gave up first; from then on it is decided and committed, whatever it takes.</summary>
        public bool TryTake() => Interlocked.CompareExchange(ref _state, 1, 0) == 0;

        /// <summary>
        /// Its caller stops waiting for a writer, unless one took it first: answered as not taken. Its share of
        /// the node's limit stays held until a writer drops it, so a stalled node holds no more than its limit.
        /// </summary>
        public void GiveUpIfWaiting()
        {
            if (Interlocked.CompareExchange(ref _state, 2, 0) == 0) Outcome.TrySetResult(new UploadOutcome.NotTaken());
        }

        // Each way out gives the upload's share of the node's limit back first (decided, failed, or
        // dropped because its caller left): not when its caller stops waiting, while it is still held here.
        public void Settle(UploadOutcome outcome)
        {
            Upload.Held?.Dispose();
            Outcome.TrySetResult(outcome);
        }

        public void Fail(Exception failure)
        {
            Upload.Held?.Dispose();
            Outcome.TrySetException(failure);
        }

        /// <summary>Its caller left: nothing to answer (when it was decided meanwhile, that answer stands).</summary>
        public void Drop()
        {
            Upload.Held?.Dispose();
            Outcome.TrySetCanceled(Abandoned);
        }
    }
}

using System.Security.Cryptography;
using System.Text.Json;
using Marten;
using Microsoft.AspNetCore.Authorization;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using Wolverine.Http;

namespace PamEventStore.Viewing;

/// <summary>
/// One thing found wrong with a session's stream, at the stream version where it shows:
/// <c>missing</c> (no event at this version: removed), <c>unreadable</c> (its row no longer reads as a
/// session event), <c>unlinked</c> (an event without a link: appended outside this service, or stored
/// before links existed), <c>altered</c> (its link does not verify: the event, its place or an event
/// before it was changed, or it was made without the org's key), <c>undecryptable</c> or
/// <c>hash-mismatch</c> (its recorded content), <c>snapshot</c> (the session's snapshot is not what
/// its events give, or it or the stream's row disagree with the events' versions), <c>index</c> (a
/// batch's entry in the batch index, through which log pages find it, is not what its event gives, or
/// is gone), <c>keys</c> (the org's keys do not open: nothing could be checked), <c>expected</c>
/// (the head given by the caller is not the stored link at that length: the stream was cut or
/// rewritten since).
/// </summary>
public sealed record IntegrityProblem(long Version, string Kind, string Detail);

/// <param name="Intact">Every event is there, reads, and its link and content verify; the snapshot is what the events give; any expected head agrees.</param>
/// <param name="Sealed">
/// Intact, and sealed: a verified <c>session_ended</c> event is in its stream. Nothing before the seal can
/// have been changed without its link failing; a cut of its end shows only against a head kept outside
/// the store. Events after it (final flushes within the grace window, refused late uploads) are chained
/// on after the seal, as safe as the newest head a reader kept.
/// </param>
/// <param name="ChainLength">Events in the stream as read; <paramref name="ChainHead"/> is the stored link of the last.</param>
/// <param name="MoreProblems">Problems found beyond the first <see cref="VerifySessionEndpoint.MaxListedProblems"/> listed.</param>
public sealed record IntegrityReport(
    Guid SessionId,
    bool Intact,
    bool Sealed,
    long ChainLength,
    string? ChainHead,
    IReadOnlyList<IntegrityProblem> Problems,
    int MoreProblems);

public sealed record IntegrityEnvelope(IntegrityReport Integrity);

/// <summary>
/// <c>GET /api/v1/pam/sessions/{sessionId}/integrity[?length=N&amp;head=BASE64]</c>: reads the session's
/// whole stream and checks every event's link (<see cref="SessionChain"/>), so an auditor can tell a
/// stream that is as it was recorded from one changed in the database. With <c>length</c> and
/// <c>head</c> (a session's <c>chainLength</c> and <c>chainHead</c> as kept outside the store, such as the
/// seal the end endpoint answered), it also checks that the stored stream still has that link at that
/// length: what removing a session's last events together with editing its snapshot cannot fake.
/// </summary>
public static class VerifySessionEndpoint
{
    public const int MaxListedProblems = 100;

    /// <summary>
    /// Events read per round trip. A window holds their ciphertexts: 32 batches of at most 512 KiB are
    /// the 16 MiB a log page may hold (a legacy recording, read in its window, the 32 MiB it may be).
    /// </summary>
    private const int Window = 32;

    [WolverineGet("/api/v1/pam/sessions/{sessionId}/integrity")]
    [Authorize(Policy = PamPolicies.Read)]
    public static async Task<IResult> Get(
        Guid sessionId, HttpRequest request, IQuerySession db, Caller caller, RecordingCipher cipher, PageTurns turns, CancellationToken ct)
    {
        var (expected, problem) = ExpectedHead.From(request.Query);
        if (problem is not null) return problem.ToResult();

        // A reader of another project is turned away before it takes a turn, by the snapshot as the UI reads it.
        if (await SnapshotOrNullAsync(db, sessionId, ct) is { ProjectId.Length: > 0 } known && !caller.CanSeeProject(known.ProjectId))
        {
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        // It reads every event with its content, a window at a time: it takes a turn as a log page does,
        // before it holds a connection, so those waiting for a turn hold none.
        using var turn = await turns.TakeAsync(ct);
        if (turn is null) return Problems.PagesBusy(turns.AtOnce, RetryAfterSeconds).ToResult();

        // One read-only snapshot of the database for everything it reads: uploads committed meanwhile
        // (a live session) are not seen, so what disagrees was changed, not merely written since.
        await using var stored = await StoredStream.OpenAsync(db, sessionId, ct);
        var head = await stored.HeadAsync(ct);

        // Authorised by the session's project as its snapshot and its first event give it: both, when
        // both read, so neither an edited snapshot nor an edited first event opens the report to another project.
        string?[] projects = [head.Snapshot?.ProjectId is { Length: > 0 } project ? project : null, head.StartedProject];
        if (!head.Exists || projects.All(p => p is null) || projects.OfType<string>().Any(p => !caller.CanSeeProject(p)))
        {
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        var (chain, fingerprint) = await OrgKeysAsync(cipher, caller.OrgId, ct);
        var check = new ChainCheck(caller.OrgId, sessionId, chain, head, expected, db.DocumentStore.Options.Serializer().ToJson);
        if (chain is null) check.KeysDoNotOpen();

        await WalkAsync(stored, check, cipher, fingerprint, caller.OrgId, sessionId, ct);
        return Results.Ok(new IntegrityEnvelope(check.Report()));
    }

    /// <summary>Every event in version order, its content, and the batch index, through <paramref name="check"/>.</summary>
    private static async Task WalkAsync(
        StoredStream stored, ChainCheck check, RecordingCipher cipher, ContentFingerprint? fingerprint, string orgId, Guid sessionId, CancellationToken ct)
    {
        // By what is stored, not by the versions the stream's row claims: a row set to a huge version
        // is reported, never walked version by version.
        for (long after = 0; ;)
        {
            var events = await stored.EventsAfterAsync(after, Window, ct);
            foreach (var e in events)
            {
                check.Next(e);
                if (fingerprint is not null && await OpenAsync(cipher, fingerprint, orgId, sessionId, e.Data, ct) is { } status and not BatchReadStatus.Ok)
                {
                    check.Content(e.Version, status);
                }
            }

            // Log pages find batches through the batch index, and re-uploads are judged against it: each
            // entry must be what its event gives, or a page would read a batch as missing, or another one.
            var expected = events.Where(e => e.Data is BatchUploaded).Select(e => (e.Version, Entry: RecordedBatch.Of(sessionId, (BatchUploaded)e.Data!, e.Version))).ToList();
            var entries = await stored.IndexEntriesAsync(expected.Select(x => x.Entry.Id).ToList(), ct);
            foreach (var (version, entry) in expected) check.Index(version, entry, entries.GetValueOrDefault(entry.Id));

            if (events.Count < Window) break;
            after = events[^1].Version;
        }

        // Entries that name this session but no batch of it: re-uploads at their offsets would be judged against them.
        check.IndexHolds(await stored.IndexIdsAsync(ct));
    }

    private const int RetryAfterSeconds = 1;

    /// <summary>
    /// The org's chain and fingerprint keys; both null when it has none, or they do not open (a master key
    /// missing from configuration, or its key ring altered): then the check says so once, instead of failing.
    /// </summary>
    private static async Task<(SessionChain? Chain, ContentFingerprint? Fingerprint)> OrgKeysAsync(RecordingCipher cipher, string orgId, CancellationToken ct)
    {
        try
        {
            return (await cipher.ChainAsync(orgId, ct), await cipher.FingerprintAsync(orgId, ct));
        }
        catch (Exception e) when (e is not OperationCanceledException && !DatabaseFailures.IsUnavailable(e))
        {
            // Whatever way the key ring fails to give keys (a wrapping that does not open, an altered
            // document), the check reports it; only the database being away is a failure of the request.
            return (null, null);
        }
    }

    /// <summary>The snapshot as Marten reads it, or null when there is none or it does not read (the check reports that).</summary>
    private static async Task<PamSession?> SnapshotOrNullAsync(IQuerySession db, Guid sessionId, CancellationToken ct)
    {
        try
        {
            return await db.LoadAsync<PamSession>(sessionId, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Opens recorded content as a log page does: a link covers its fingerprint, this checks the content against it.</summary>
    private static async Task<BatchReadStatus?> OpenAsync(
        RecordingCipher cipher, ContentFingerprint fingerprint, string orgId, Guid sessionId, object? data, CancellationToken ct)
    {
        RecordingPlace? place = data switch
        {
            BatchUploaded b => new BatchPlace(orgId, sessionId, b.Sequence, b.StartOffset),
            LegacyLogsUploaded => new LegacyLogsPlace(orgId, sessionId),
            _ => null,
        };
        if (place is null || data is not IEncryptedRecording recording) return null;
        if (recording.KeyId is not { Length: > 0 } || recording.ContentFingerprint is null) return BatchReadStatus.Undecryptable;
        return (await StoredRecording.OpenAsync(cipher, fingerprint, place, recording, ct)).Status;
    }

    /// <summary>A head kept outside the store: the link the stream must have at <see cref="Length"/>.</summary>
    private sealed record ExpectedHead(long Length, byte[] Head)
    {
        public static (ExpectedHead? Expected, Microsoft.AspNetCore.Mvc.ProblemDetails? Problem) From(IQueryCollection query)
        {
            var hasLength = query.TryGetValue("length", out var rawLength);
            var hasHead = query.TryGetValue("head", out var rawHead);
            if (!hasLength && !hasHead) return (null, null);

            var head = new byte[SessionChain.LinkSize];
            if (!hasLength || !hasHead || rawHead.Count != 1
                || !WholeNumber.TryParse(rawLength, out var length) || length < 1
                || !Convert.TryFromBase64String(StandardBase64(rawHead[0]!), head, out var written) || written != SessionChain.LinkSize)
            {
                return (null, Problems.InvalidRequest(
                    "length and head go together: a positive event count and the base64 link of that event (a session's chainLength and chainHead)."));
            }

            return (new ExpectedHead(length, head), null);
        }

        // A head pasted into a URL unescaped has its '+' read as a space; base64url is taken as well.
        private static string StandardBase64(string head)
        {
            var standard = head.Replace(' ', '+').Replace('-', '+').Replace('_', '/');
            return standard.Length % 4 == 0 ? standard : standard.PadRight(standard.Length + 4 - standard.Length % 4, '=');
        }
    }

    /// <summary>
    /// Walks a stream in version order, checking each event's link against the one before it, the
    /// snapshot against the events up to its version (replayed), and a head the caller kept against
    /// the link stored at its version.
    /// </summary>
    private sealed class ChainCheck(string orgId, Guid sessionId, SessionChain? chain, StoredHead stored, ExpectedHead? expected, Func<object, string> toJson)
    {
        private readonly List<IntegrityProblem> _problems = [];
        private int _more;
        private long _version;
        private byte[]? _head;
        private bool _sealed;
        private bool _expectedSeen;
        private bool _snapshotSeen;
        private PamSession? _replayed;
        private bool _replayable = true;
        private readonly HashSet<string> _indexed = new(StringComparer.Ordinal);

        public void Next(StoredEvent row)
        {
            var version = row.Version;
            MissingUpTo(version - 1);
            if (version - 1 > _version) _replayable = false;

            var e = row.Data as SessionEvent;
            if (row.Data is null)
            {
                Add(version, "unreadable", $"The stored row ({row.Type}) does not read as a session event: it was altered.");
                _replayable = false;
            }
            else if (e?.Link is null)
            {
                Add(version, "unlinked", $"The {row.Type} event here carries no link: it was not appended by this service.");
            }
            else if (chain is null)
            {
                // Reported once (KeysDoNotOpen), not at every event.
            }
            else if (!chain.Verifies(orgId, sessionId, version, _head, e))
            {
                Add(version, "altered", $"The {row.Type} event's link does not verify: it, its place, or the event before it was changed, or it was not made with the org's key.");
            }
            else if (e is SessionEnded)
            {
                _sealed = true;
            }

            if (row.Data is not null) _replayed = PamSession.Replay(_replayed, row.Data, version);

            if (expected is not null && version == expected.Length)
            {
                _expectedSeen = true;
                if (e?.Link is not { } link || !CryptographicOperations.FixedTimeEquals(link, expected.Head))
                {
                    Add(version, "expected", "The stored link at this version is not the head given: the stream was rewritten since.");
                }
            }

            if (stored.Snapshot is { } snapshot && version == snapshot.Version)
            {
                _snapshotSeen = true;
                CompareSnapshot(version);
            }

            // Go on from the stored link, so what follows a changed event is still checked on its own.
            _head = e?.Link;
            _version = version;
        }

        /// <summary>The recorded content of the event at <paramref name="version"/> did not open, or is not what was accepted.</summary>
        public void Content(long version, BatchReadStatus status) => Add(version, status == BatchReadStatus.HashMismatch ? "hash-mismatch" : "undecryptable", status == BatchReadStatus.HashMismatch
            ? "Its recorded content opens but is not the content that was accepted."
            : "Its recorded content does not open under its key at its place: altered, moved, or its key is gone.");

        /// <summary>The batch index entry of the batch event at <paramref name="version"/>, against the entry the event gives.</summary>
        public void Index(long version, RecordedBatch expected, RecordedBatch? entry)
        {
            _indexed.Add(expected.Id);
            if (entry is null)
            {
                Add(version, "index", $"Batch {expected.Sequence} has no entry in the batch index, or its entry does not read: log pages read it as missing.");
                return;
            }

            var differing = Differing(toJson(entry), toJson(expected));
            if (differing.Count > 0)
            {
                Add(version, "index", $"The batch index entry of batch {expected.Sequence} is not what its event gives, in: {string.Join(", ", differing)}.");
            }
        }

        /// <summary>Every entry of the batch index that names this session must be one of its batches'.</summary>
        public void IndexHolds(IEnumerable<string> ids)
        {
            foreach (var id in ids.Where(id => !_indexed.Contains(id)).Order(StringComparer.Ordinal))
            {
                Add(0, "index", $"The batch index holds an entry ({id}) for this session that none of its batches gives: re-uploads at its offset would be judged against it.");
            }
        }

        /// <summary>The org's keys do not open, or it has none: said once, before anything else is found.</summary>
        public void KeysDoNotOpen() =>
            Add(0, "keys", "The org's keys do not open (a master key missing from configuration, or the org's key ring altered): no link and no recorded content could be checked.");

        public IntegrityReport Report()
        {
            // Events up to the stream's row must all be there, and none past it.
            MissingUpTo(stored.StreamVersion);
            if (expected is not null && !_expectedSeen)
            {
                Add(expected.Length, "expected", $"The stream ends at version {_version}, before the head given: it was cut since.");
            }

            if (!stored.HasSnapshotRow)
            {
                Add(_version, "snapshot", "The session has no snapshot, though its events are stored: it was removed.");
            }
            else if (stored.Snapshot is not { } snapshot)
            {
                Add(_version, "snapshot", "The session's snapshot does not read: it was altered.");
            }
            else if (!_snapshotSeen)
            {
                Add(snapshot.Version, "snapshot", $"The session's snapshot is at version {snapshot.Version}, past its last event ({_version}).");
            }
            else if (snapshot.Version != stored.StreamVersion)
            {
                Add(snapshot.Version, "snapshot", $"The session's snapshot is at version {snapshot.Version} and its stream's row at {stored.StreamVersion}: they are written together.");
            }

            if (_version > stored.StreamVersion)
            {
                Add(stored.StreamVersion, "snapshot", $"The stream's row is at version {stored.StreamVersion}, behind its events (to {_version}).");
            }

            var intact = _problems.Count == 0 && _more == 0;
            // The lowest versions first: where the stream first went wrong, and the org's keys (version 0) before all.
            var listed = _problems.OrderBy(p => p.Version).Take(MaxListedProblems).ToList();
            return new IntegrityReport(
                sessionId, intact, intact && _sealed, _version, _head is { } head ? Convert.ToBase64String(head) : null, listed, _problems.Count - listed.Count + _more);
        }

        /// <summary>
        /// The snapshot is what the UI shows: every field, as the UI reads it (a field missing from the row
        /// reads as its default), must be what the events up to it give. A snapshot written before links
        /// existed lacks the chain's fields, and its events give none: they compare equal.
        /// </summary>
        private void CompareSnapshot(long version)
        {
            // An event before it is already reported when it cannot be replayed.
            if (!_replayable || _replayed is null || stored.Snapshot is not { } snapshot) return;

            var differing = Differing(toJson(snapshot), toJson(_replayed));
            if (differing.Count > 0)
            {
                Add(version, "snapshot", $"The session's snapshot is not what its events give, in: {string.Join(", ", differing)}.");
            }
        }

        /// <summary>The names of the top-level fields two documents' JSON disagree on.</summary>
        private static List<string> Differing(string storedJson, string expectedJson)
        {
            using var stored = JsonDocument.Parse(storedJson);
            using var expected = JsonDocument.Parse(expectedJson);
            return stored.RootElement.EnumerateObject().Select(field => field.Name)
                .Union(expected.RootElement.EnumerateObject().Select(field => field.Name))
                .Where(name => !SameField(stored.RootElement, expected.RootElement, name))
                .ToList();
        }

        private static bool SameField(JsonElement a, JsonElement b, string name) =>
            a.TryGetProperty(name, out var x) && b.TryGetProperty(name, out var y) && JsonElement.DeepEquals(x, y);

        private void MissingUpTo(long version)
        {
            for (var missing = _version + 1; missing <= version; missing++)
            {
                Add(missing, "missing", "No event is stored at this version: it was removed.");
                if (_more > 0) break; // counted no further: a version set far ahead would be walked for ever
            }
        }

        /// <summary>Problems kept to choose the listed ones from; past it, only counted.</summary>
        private const int MaxKeptProblems = 10_000;

        private void Add(long version, string kind, string detail)
        {
            if (_problems.Count < MaxKeptProblems) _problems.Add(new IntegrityProblem(version, kind, detail));
            else _more++;
        }
    }
}

using System.Globalization;
using System.Security.Cryptography;
using Marten;
using Microsoft.AspNetCore.Authorization;
using PamEventStore.Crypto;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using Wolverine.Http;

namespace PamEventStore.Viewing;

/// <summary>
/// One thing found wrong with a session's stream, at the stream version where it shows:
/// <c>missing</c> (no event at this version: removed), <c>unlinked</c> (an event without a link: appended
/// outside this service, or stored before links existed), <c>altered</c> (its link does not verify: the
/// event, its place or an event before it was changed, or it was made without the org's key),
/// <c>snapshot</c> (the session's snapshot disagrees with its stream), <c>expected</c> (the head given
/// by the caller is not the stored link at that length: the stream was cut or rewritten since).
/// </summary>
public sealed record IntegrityProblem(long Version, string Kind, string Detail);

/// <param name="Intact">Every event is there and its link verifies, and the snapshot and any expected head agree.</param>
/// <param name="Sealed">
/// The session was sealed: a verified <c>session_ended</c> event is in its stream, so nothing before it was
/// changed since. Events after it (final flushes within the grace window, refused late uploads) are
/// chained on after the seal, as safe as the newest head a reader kept.
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

        if (await db.LoadAsync<PamSession>(sessionId, ct) is not { } session || !caller.CanSeeProject(session.ProjectId))
        {
            return Problems.SessionNotFound(sessionId).ToResult();
        }

        // It reads every event with its content, a window at a time: it takes a turn as a log page does.
        using var turn = await turns.TakeAsync(ct);
        if (turn is null) return Problems.PagesBusy(turns.AtOnce, RetryAfterSeconds).ToResult();

        // Read after the snapshot: a live session's stream is at or past its snapshot, never behind it.
        var streamVersion = (await db.Events.FetchStreamStateAsync(sessionId, ct))?.Version ?? 0;
        List<Anchor> anchors = [new(session.Version, session.ChainHead, "snapshot", "the session's snapshot holds")];
        if (expected is not null) anchors.Add(new Anchor(expected.Length, expected.Head, "expected", "given"));

        var check = new ChainCheck(caller.OrgId, sessionId, await cipher.ChainAsync(caller.OrgId, ct), anchors);
        var fingerprint = await cipher.FingerprintAsync(caller.OrgId, ct);

        // By what is stored, not by the versions the stream's row claims: a row set to a huge version
        // is reported, never walked version by version.
        for (long after = 0; ;)
        {
            var events = await db.Events.QueryAllRawEvents()
                .Where(e => e.StreamId == sessionId && e.Version > after)
                .OrderBy(e => e.Version)
                .Take(Window)
                .ToListAsync(ct);
            foreach (var e in events)
            {
                check.Next(e.Version, e.Data);
                if (await OpenAsync(cipher, fingerprint, caller.OrgId, sessionId, e.Data, ct) is { } status and not BatchReadStatus.Ok) check.Content(e.Version, status);
            }

            if (events.Count < Window) break;
            after = events[^1].Version;
        }

        return Results.Ok(new IntegrityEnvelope(check.Report(streamVersion)));
    }

    private const int RetryAfterSeconds = 1;

    /// <summary>Opens recorded content as a log page does: a link covers its fingerprint, this checks the content against it.</summary>
    private static async Task<BatchReadStatus?> OpenAsync(
        RecordingCipher cipher, ContentFingerprint? fingerprint, string orgId, Guid sessionId, object data, CancellationToken ct)
    {
        RecordingPlace? place = data switch
        {
            BatchUploaded b => new BatchPlace(orgId, sessionId, b.Sequence, b.StartOffset),
            LegacyLogsUploaded => new LegacyLogsPlace(orgId, sessionId),
            _ => null,
        };
        if (place is null || data is not IEncryptedRecording recording) return null;
        if (fingerprint is null || recording.KeyId.Length == 0) return BatchReadStatus.Undecryptable;
        return (await StoredRecording.OpenAsync(cipher, fingerprint, place, recording.KeyId, recording.Ciphertext, recording.ContentFingerprint, ct)).Status;
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
            if (!hasLength || !hasHead || rawLength.Count != 1 || rawHead.Count != 1
                || !long.TryParse(rawLength[0], NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length < 1
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

    /// <summary>A link the stream must have at a version, and the problem kind when it has not.</summary>
    private sealed record Anchor(long Version, byte[]? Head, string Kind, string Whose);

    /// <summary>
    /// Walks a stream in version order, checking each event's link against the one before it, and the
    /// anchors (the snapshot's head, a head the caller kept) against the links stored at their versions.
    /// </summary>
    private sealed class ChainCheck(string orgId, Guid sessionId, SessionChain? chain, IReadOnlyList<Anchor> anchors)
    {
        private readonly List<IntegrityProblem> _problems = [];
        private readonly HashSet<Anchor> _seen = [];
        private int _more;
        private long _version;
        private byte[]? _head;
        private bool _sealed;

        public void Next(long version, object data)
        {
            MissingUpTo(version - 1);

            var e = data as SessionEvent;
            if (e?.Link is null)
            {
                Add(version, "unlinked", $"The {SessionEventNames.All.GetValueOrDefault(data.GetType(), data.GetType().Name)} event here carries no link: it was not appended by this service.");
            }
            else if (chain is null || !chain.Verifies(orgId, sessionId, version, _head, e))
            {
                Add(version, "altered", $"The {SessionEventNames.Of(e)} event's link does not verify: it, its place, or the event before it was changed, or it was not made with the org's key.");
            }
            else if (e is SessionEnded)
            {
                _sealed = true;
            }

            foreach (var anchor in anchors.Where(a => a.Version == version))
            {
                _seen.Add(anchor);
                if (!SameHead(e?.Link, anchor.Head))
                {
                    Add(version, anchor.Kind, $"The stored link at this version is not the head {anchor.Whose}: the stream was rewritten since.");
                }
            }

            // Go on from the stored link, so what follows a changed event is still checked on its own.
            _head = e?.Link;
            _version = version;
        }

        /// <summary>The recorded content of the event at <paramref name="version"/> did not open, or is not what was accepted.</summary>
        public void Content(long version, BatchReadStatus status) => Add(version, status == BatchReadStatus.HashMismatch ? "hash-mismatch" : "undecryptable", status == BatchReadStatus.HashMismatch
            ? "Its recorded content opens but is not the content that was accepted."
            : "Its recorded content does not open under its key at its place: altered, moved, or its key is gone.");

        /// <param name="streamVersion">The version the stream's row holds: events up to it must all be there.</param>
        public IntegrityReport Report(long streamVersion)
        {
            MissingUpTo(streamVersion);
            foreach (var anchor in anchors.Where(a => !_seen.Contains(a)))
            {
                Add(anchor.Version, anchor.Kind, $"The stream ends at version {_version}, before the head {anchor.Whose}: it was cut since.");
            }

            var intact = _problems.Count == 0 && _more == 0;
            return new IntegrityReport(sessionId, intact, intact && _sealed, _version, _head is { } head ? Convert.ToBase64String(head) : null, _problems, _more);
        }

        // A session stored before links existed has none in its snapshot either: that is reported as unlinked, not again here.
        private static bool SameHead(byte[]? stored, byte[]? anchor) =>
            stored is null || anchor is null ? stored is null && anchor is null : CryptographicOperations.FixedTimeEquals(stored, anchor);

        private void MissingUpTo(long version)
        {
            for (var missing = _version + 1; missing <= version; missing++)
            {
                Add(missing, "missing", "No event is stored at this version: it was removed.");
                if (_more > 0) break;
            }
        }

        private void Add(long version, string kind, string detail)
        {
            if (_problems.Count < MaxListedProblems) _problems.Add(new IntegrityProblem(version, kind, detail));
            else _more++;
        }
    }
}

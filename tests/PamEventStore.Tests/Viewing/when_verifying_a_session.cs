using System.Net;
using System.Text;
using System.Text.Json;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using PamEventStore.Crypto;
using PamEventStore.Gateway;
using PamEventStore.Recording;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using PamEventStore.Viewing;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Viewing;

/// <summary>
/// The tamper-evident chain: every event the service appends is linked to the one before it under the
/// org's key, and the integrity endpoint tells a stream as recorded from one changed in the database.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_verifying_a_session(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private Task<Reply> Integrity(Guid session, string query = "", string? token = null) =>
        _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity{(query.Length > 0 ? "?" + query : "")}", token ?? _org.UserToken());

    private static JsonElement Report(Reply reply)
    {
        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        return reply.Body.GetProperty("integrity");
    }

    private static (long Version, string Kind)[] ProblemsOf(JsonElement report) =>
        report.GetProperty("problems").EnumerateArray().Select(p => (p.GetProperty("version").GetInt64(), p.GetProperty("kind").GetString()!)).ToArray();

    /// <summary>Started, activated, a batch, a gap, a batch after it, a refused conflict, ended: seven events.</summary>
    private async Task<(Guid Session, JsonElement Ended)> RecordedAndEnded()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        (await _org.UploadAsync(session, 200, Lines(2, 2), endOffset: 300)).ShouldBeAccepted(1);
        (await _org.UploadAsync(session, 0, Lines(7, 2), endOffset: 100)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
        var ended = await _org.EndAsync(session);
        ended.Status.ShouldBe(HttpStatusCode.OK);
        return (session, ended.Body.GetProperty("session"));
    }

    private async Task<long> VersionOf(Guid session, string type) =>
        await StoredEvents.ScalarAsync<long>(store, "select version from pam.mt_events where tenant_id = @org and stream_id = @session and type = @type",
            ("org", _org.Id), ("session", session), ("type", type));

    [Fact]
    public async Task a_recorded_session_verifies_intact_and_sealed_by_its_end()
    {
        var (session, ended) = await RecordedAndEnded();

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("sealed").GetBoolean().ShouldBeTrue();
        report.GetProperty("problems").GetArrayLength().ShouldBe(0);
        report.GetProperty("chainLength").GetInt64().ShouldBe(7);
        ended.GetProperty("chainLength").GetInt64().ShouldBe(7);
        report.GetProperty("chainHead").GetString().ShouldBe(ended.GetProperty("chainHead").GetString());
        (await _org.SessionAsync(session)).GetProperty("chainHead").GetString().ShouldBe(ended.GetProperty("chainHead").GetString());
    }

    [Fact]
    public async Task the_seal_leaves_the_database_through_the_logs()
    {
        var (session, ended) = await RecordedAndEnded();
        var seal = ended.GetProperty("seal");

        var logged = store.Logs.Entries.Where(e => e.Category == PamEventStore.Gateway.EndSessionEndpoint.SealLog && e.Message.Contains(session.ToString())).ShouldHaveSingleItem();

        logged.Level.ShouldBe(Microsoft.Extensions.Logging.LogLevel.Information);
        logged.Message.ShouldBe($"Session {session} of org {_org.Id} sealed at event {seal.GetProperty("length").GetInt64()}: {seal.GetProperty("head").GetString()}");

        // Ending it again changes nothing and seals nothing again.
        (await _org.EndAsync(session)).Status.ShouldBe(HttpStatusCode.OK);
        store.Logs.Entries.Count(e => e.Category == PamEventStore.Gateway.EndSessionEndpoint.SealLog && e.Message.Contains(session.ToString())).ShouldBe(1);
    }

    [Fact]
    public async Task a_live_session_verifies_intact_but_not_sealed_and_its_head_moves_with_each_batch()
    {
        var session = await _org.CreateSessionAsync();
        var created = await _org.SessionAsync(session);
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeAccepted(0);
        var live = await _org.SessionAsync(session);

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("sealed").GetBoolean().ShouldBeFalse();
        created.GetProperty("chainLength").GetInt64().ShouldBe(1);
        live.GetProperty("chainLength").GetInt64().ShouldBe(3);
        live.GetProperty("chainHead").GetString().ShouldNotBe(created.GetProperty("chainHead").GetString());
        report.GetProperty("chainHead").GetString().ShouldBe(live.GetProperty("chainHead").GetString());
        var firstHead = created.GetProperty("chainHead").GetString()!;
        Report(await Integrity(session, $"length=1&head={Uri.EscapeDataString(firstHead)}")).GetProperty("intact").GetBoolean().ShouldBeTrue();

    }

    [Fact]
    public async Task a_kept_head_pasted_unescaped_or_as_base64url_is_taken()
    {
        // A head with both '+' and '/' in it, which are what escaping and base64url change (about one in four).
        Guid session;
        string head;
        var tries = 0;
        do
        {
            session = await _org.CreateSessionAsync();
            head = (await _org.SessionAsync(session)).GetProperty("chainHead").GetString()!;
            (++tries).ShouldBeLessThan(100);
        }
        while (!head.Contains('+') || !head.Contains('/'));

        // Unescaped, '+' reads as a space.
        Report(await Integrity(session, $"length=1&head={head.Replace("=", "%3D")}")).GetProperty("intact").GetBoolean().ShouldBeTrue();
        var base64Url = head.TrimEnd('=').Replace('+', '-').Replace('/', '_');
        Report(await Integrity(session, $"length=1&head={base64Url}")).GetProperty("intact").GetBoolean().ShouldBeTrue();
        Report(await Integrity(session, $"length=2&head={base64Url}")).GetProperty("intact").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task an_event_changed_in_the_database_is_reported_at_its_version_and_the_rest_still_verify()
    {
        var (session, _) = await RecordedAndEnded();
        var gap = await VersionOf(session, "gap_detected");

        // Someone with database access narrows the gap, so the recording looks less incomplete.
        await StoredEvents.ExecuteAsync(store,
            "update pam.mt_events set data = jsonb_set(data, '{to}', '150') where tenant_id = @org and stream_id = @session and type = 'gap_detected'",
            ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        report.GetProperty("sealed").GetBoolean().ShouldBeFalse();
        // The snapshot still holds the gap as recorded, not as it now reads: that shows too.
        ProblemsOf(report).ShouldBe([(gap, "altered"), (7, "snapshot")]);
    }

    [Fact]
    public async Task an_event_removed_from_the_middle_is_reported_missing()
    {
        var (session, _) = await RecordedAndEnded();
        var conflict = await VersionOf(session, "batch_conflict_rejected");

        await StoredEvents.ExecuteAsync(store,
            "delete from pam.mt_events where tenant_id = @org and stream_id = @session and type = 'batch_conflict_rejected'",
            ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain((conflict, "missing"));
        // The event after it was linked to the one removed: it does not verify after what is there now.
        ProblemsOf(report).ShouldContain((conflict + 1, "altered"));
    }

    [Fact]
    public async Task an_event_copied_from_another_session_with_its_link_does_not_verify()
    {
        var (session, _) = await RecordedAndEnded();
        var (other, _) = await RecordedAndEnded();
        var gap = await VersionOf(session, "gap_detected");

        // Same place in both streams, another session's event and link: links bind the session.
        await StoredEvents.ExecuteAsync(store,
            "update pam.mt_events set data = (select data from pam.mt_events where tenant_id = @org and stream_id = @other and version = @version) " +
            "where tenant_id = @org and stream_id = @session and version = @version",
            ("org", _org.Id), ("session", session), ("other", other), ("version", gap));

        ProblemsOf(Report(await Integrity(session))).ShouldContain((gap, "altered"));
    }

    private Task RewindAsync(Guid session, long kept) => StoredEvents.RewindAsync(store, _org, session, kept);

    private Task SetSnapshotAsync(Guid session, long version) => StoredEvents.SetSnapshotAsync(store, _org, session, version);

    [Fact]
    public async Task editing_the_snapshot_alone_is_reported_with_the_fields_edited()
    {
        var (session, _) = await RecordedAndEnded();

        // What the UI shows, made to read complete and someone else's.
        await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_pamsession set data = data || jsonb_build_object('gapCount', 0, 'missingBytes', 0, 'gaps', '[]'::jsonb, 'userId', 'mallory') " +
            "where tenant_id = @org and id = @session",
            ("org", _org.Id), ("session", session));
        (await _org.SessionAsync(session)).GetProperty("complete").GetBoolean().ShouldBeTrue();

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(7, "snapshot")]);
        var detail = report.GetProperty("problems")[0].GetProperty("detail").GetString()!;
        foreach (var field in new[] { "userId", "gapCount", "missingBytes", "gaps" }) detail.ShouldContain(field);
    }

    [Theory]
    [InlineData("status")]
    [InlineData("gapCount")]
    [InlineData("conflictCount")]
    [InlineData("endedAt")]
    [InlineData("chainHead")]
    [InlineData("seal")]
    public async Task a_field_removed_from_the_snapshot_is_reported(string field)
    {
        var (session, _) = await RecordedAndEnded();

        // The UI reads a missing field as its default: the session would look live, or complete.
        await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_pamsession set data = data - @field where tenant_id = @org and id = @session",
            ("org", _org.Id), ("session", session), ("field", field));

        var report = Report(await Integrity(session));

        ProblemsOf(report).ShouldBe([(7, "snapshot")]);
        report.GetProperty("problems")[0].GetProperty("detail").GetString()!.ShouldContain(field);
    }

    [Fact]
    public async Task a_snapshot_without_its_project_is_reported_to_the_project_s_readers_by_the_first_event()
    {
        var (session, _) = await RecordedAndEnded();
        await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_pamsession set data = data - 'projectId' where tenant_id = @org and id = @session",
            ("org", _org.Id), ("session", session));

        var projectReader = TestKeys.Token(new TokenClaims(_org.Id, "carol", "user", Scopes: [PamScopes.Read], ProjectIds: ["project-1"]));
        ProblemsOf(Report(await Integrity(session, token: projectReader))).ShouldBe([(7, "snapshot")]);
        (await Integrity(session, token: TestKeys.Token(new TokenClaims(_org.Id, "bob", "user", Scopes: [PamScopes.Read], ProjectIds: ["project-2"]))))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task checks_waiting_for_a_turn_hold_no_database_connection()
    {
        var session = await _org.CreateSessionAsync();
        var turns = store.Host.Services.GetRequiredService<PageTurns>();
        // An open transaction is what a waiting check must not hold (a pooled connection left idle is the
        // pool's, and looks the same from the server as one held: the transaction is what tells them apart).
        const string inTransaction =
            "select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%' and pid <> pg_backend_pid()";

        Reply[] answers;
        using (await HeldTurns.TakeAllAsync(turns.AtOnce, () => turns.TakeAsync(CancellationToken.None)))
        {
            var waiting = Enumerable.Range(0, 4).Select(_ => Integrity(session)).ToArray();
            await Task.Delay(PamStoreHost.PagesWait / 2);
            (await StoredEvents.ScalarAsync<long>(store, inTransaction)).ShouldBe(0);
            answers = await Task.WhenAll(waiting);
        }

        answers.ShouldAllBe(a => a.Status == HttpStatusCode.ServiceUnavailable);
    }

    [Fact]
    public async Task a_snapshot_set_back_behind_its_stream_is_reported()
    {
        var (session, _) = await RecordedAndEnded();

        // The snapshot as it was before the gap: genuine then, but the stream has moved on.
        await SetSnapshotAsync(session, 3);

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(3, "snapshot")]);
    }

    [Theory]
    [InlineData("data = jsonb_set(data, '{at}', '\"not a date\"')")]
    [InlineData("data = 'null'::jsonb")]
    [InlineData("type = 'no_such_event'")]
    public async Task a_row_that_no_longer_reads_is_reported_unreadable_not_a_failure(string alteration)
    {
        var (session, _) = await RecordedAndEnded();
        var gap = await VersionOf(session, "gap_detected");
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set {alteration} where tenant_id = @org and stream_id = @session and version = @version",
            ("org", _org.Id), ("session", session), ("version", gap));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain((gap, "unreadable"));
    }

    [Theory]
    [InlineData("bdata = null")]
    [InlineData("bdata = null, data = '{\"at\":\"2026-12-05T10:00:00+00:00\"}'::jsonb")]
    [InlineData("bdata = substring(bdata from 1 for 20)")]
    public async Task a_batch_row_that_no_longer_reads_is_reported_unreadable(string alteration)
    {
        var session = await ThreeBatches();
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set {alteration} where {StoredEvents.BatchRow}", StoredEvents.BatchRowParameters(_org, session, 1));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain((4, "unreadable"));
    }

    [Fact]
    public async Task an_event_retyped_as_a_batch_is_reported_unreadable()
    {
        var session = await ThreeBatches();
        await StoredEvents.ExecuteAsync(store,
            "update pam.mt_events set type = 'batch_uploaded' where tenant_id = @org and stream_id = @session and type = 'session_activated'",
            ("org", _org.Id), ("session", session));

        ProblemsOf(Report(await Integrity(session))).ShouldContain((2, "unreadable"));
    }

    [Theory]
    [InlineData("data = '[]'::jsonb")]
    [InlineData("data = jsonb_set(data, '{status}', '\"Bogus\"')")]
    [InlineData("data = jsonb_set(data, '{version}', '\"x\"')")]
    [InlineData("data = 'null'::jsonb")]
    public async Task a_snapshot_that_no_longer_reads_is_reported_not_a_failure(string alteration)
    {
        var (session, _) = await RecordedAndEnded();
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_doc_pamsession set {alteration} where tenant_id = @org and id = @session", ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(7, "snapshot")]);
    }

    [Fact]
    public async Task a_removed_snapshot_is_reported_not_a_missing_session()
    {
        var (session, _) = await RecordedAndEnded();
        await StoredEvents.ExecuteAsync(store, "delete from pam.mt_doc_pamsession where tenant_id = @org and id = @session", ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        ProblemsOf(report).ShouldBe([(7, "snapshot")]);
        report.GetProperty("problems")[0].GetProperty("detail").GetString()!.ShouldContain("no snapshot");

        // Still only for readers of the session's project, as its first event gives it.
        (await Integrity(session, token: TestKeys.Token(new TokenClaims(_org.Id, "bob", "user", Scopes: [PamScopes.Read], ProjectIds: ["project-2"]))))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task a_stream_row_without_a_version_is_reported_not_a_failure()
    {
        var (session, _) = await RecordedAndEnded();
        await StoredEvents.ExecuteAsync(store, "update pam.mt_streams set version = null where tenant_id = @org and id = @session", ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain((7, "snapshot"));
    }

    [Fact]
    public async Task a_session_recorded_before_links_reads_unlinked_and_nothing_else()
    {
        // As a node of the version before links wrote it: events without links, a snapshot without the
        // chain's fields, in an org that has recorded (it has keys).
        await _org.CreateSessionAsync();
        var session = Guid.CreateVersion7();
        var actor = new Actor("user", "alice", null, null);
        var at = new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero);
        await using (var db = store.Host.Services.GetRequiredService<IDocumentStore>().LightweightSession(_org.Id))
        {
            db.Events.StartStream<PamSession>(session,
                new SessionStarted(session, "project-1", "ssh", "web-1", "root", "alice", Org.Gateway, null, at, actor),
                new SessionEnded(at.AddMinutes(5), actor, null));
            await db.SaveChangesAsync();
        }

        await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_pamsession set data = data - 'seal' - 'chainHead' where tenant_id = @org and id = @session",
            ("org", _org.Id), ("session", session));

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(1, "unlinked"), (2, "unlinked")]);
    }

    [Fact]
    public async Task cutting_the_end_and_editing_the_snapshot_to_match_is_caught_by_the_head_kept_at_the_end()
    {
        var (session, ended) = await RecordedAndEnded();
        var (length, head) = (ended.GetProperty("chainLength").GetInt64(), ended.GetProperty("chainHead").GetString()!);

        // Someone with database access removes the refused conflict and the end, and makes the
        // stream's row and the snapshot agree with what is left, as if the session were still live.
        await RewindAsync(session, length - 2);

        // What the store holds alone cannot tell: every link left verifies.
        var alone = Report(await Integrity(session));
        alone.GetProperty("intact").GetBoolean().ShouldBeTrue(alone.ToString());
        alone.GetProperty("sealed").GetBoolean().ShouldBeFalse();
        alone.GetProperty("chainLength").GetInt64().ShouldBe(length - 2);

        // The seal kept outside the store can.
        var withSeal = Report(await Integrity(session, $"length={length}&head={Uri.EscapeDataString(head)}"));
        withSeal.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(withSeal).ShouldBe([(length, "expected")]);
    }

    [Fact]
    public async Task an_upload_answers_where_the_chain_stands_and_a_duplicate_does_not()
    {
        var session = await _org.CreateSessionAsync();

        var stored = (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeAccepted(0).Body;
        var duplicate = (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeDuplicate().Body;

        var view = await _org.SessionAsync(session);
        stored.GetProperty("chainLength").GetInt64().ShouldBe(3);
        stored.GetProperty("chainHead").GetString().ShouldBe(view.GetProperty("chainHead").GetString());
        duplicate.GetProperty("chainLength").ValueKind.ShouldBe(JsonValueKind.Null);
        duplicate.GetProperty("chainHead").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task a_cut_made_while_the_session_is_live_is_caught_by_a_head_the_gateway_kept()
    {
        // An Infisical gateway sends no endOffset: a cut leaves no gap to detect.
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 1))).ShouldBeAccepted(0);
        var kept = (await _org.UploadAsync(session, 100, Lines(1, 1))).ShouldBeAccepted(1).Body;
        (await _org.UploadAsync(session, 200, Lines(2, 1))).ShouldBeAccepted(2);

        // Batches 1 and 2 are cut, thoroughly; the gateway goes on uploading, and the session ends.
        await RewindAsync(session, 3);
        (await _org.UploadAsync(session, 300, Lines(3, 1))).ShouldBeAccepted(1);
        var ended = (await _org.EndAsync(session)).Body.GetProperty("session");

        // The seal taken after the cut covers the cut history: only the head kept from before it shows it.
        var sealReport = Report(await Integrity(session, $"length={ended.GetProperty("seal").GetProperty("length").GetInt64()}&head={Uri.EscapeDataString(ended.GetProperty("seal").GetProperty("head").GetString()!)}"));
        sealReport.GetProperty("intact").GetBoolean().ShouldBeTrue(sealReport.ToString());
        var keptReport = Report(await Integrity(session, $"length={kept.GetProperty("chainLength").GetInt64()}&head={Uri.EscapeDataString(kept.GetProperty("chainHead").GetString()!)}"));
        keptReport.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(keptReport).ShouldBe([(4, "expected")]);
    }

    [Fact]
    public async Task a_head_that_is_not_the_stored_link_at_its_length_is_reported()
    {
        var (session, ended) = await RecordedAndEnded();
        var forged = Convert.ToBase64String(new byte[32]);

        var report = Report(await Integrity(session, $"length={ended.GetProperty("chainLength").GetInt64()}&head={Uri.EscapeDataString(forged)}"));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(7, "expected")]);
    }

    [Fact]
    public async Task what_is_chained_after_the_seal_keeps_the_seal_verifiable()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        var ended = (await _org.EndAsync(session)).Body.GetProperty("session");
        var seal = ended.GetProperty("seal");
        seal.GetProperty("length").GetInt64().ShouldBe(ended.GetProperty("chainLength").GetInt64());
        seal.GetProperty("head").GetString().ShouldBe(ended.GetProperty("chainHead").GetString());

        // A final flush within the grace window is stored after the end, and a late one refused and
        // recorded after the window: both linked after the seal.
        (await _org.UploadAsync(session, 100, Lines(2, 2), endOffset: 200)).ShouldBeAccepted(1);
        store.Clock.Advance(TimeSpan.FromMinutes(3));
        (await _org.UploadAsync(session, 200, Lines(4, 2), endOffset: 300)).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");

        // The session and a repeated end still answer the seal; the head has moved on.
        var again = (await _org.EndAsync(session)).Body.GetProperty("session");
        again.GetProperty("seal").GetRawText().ShouldBe(seal.GetRawText());
        again.GetProperty("chainLength").GetInt64().ShouldBe(seal.GetProperty("length").GetInt64() + 2);

        var report = Report(await Integrity(session, $"length={seal.GetProperty("length").GetInt64()}&head={Uri.EscapeDataString(seal.GetProperty("head").GetString()!)}"));
        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("sealed").GetBoolean().ShouldBeTrue();
        report.GetProperty("chainHead").GetString().ShouldBe(again.GetProperty("chainHead").GetString());
    }

    [Fact]
    public async Task sessions_written_together_in_one_commit_each_verify()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => _org.CreateSessionAsync()));
        var sealing = await store.Host.Services.GetRequiredService<RecordingCipher>().SealingAsync(_org.Id, CancellationToken.None);
        var caller = new Caller(_org.Id, "gateway-identity", "gateway", Org.Gateway, new HashSet<string>(), null, "test");
        await using var commits = new UploadCommits(store.Host.Services.GetRequiredService<IDocumentStore>(), store.Host.Services.GetRequiredService<RecordingCipher>(), store.Clock,
            Options.Create(new UploadOptions { CommitWriters = 1 }), NullLogger<UploadCommits>.Instance, store.Host.Services.GetRequiredService<SessionSignals>());

        // Handed over at once, as concurrent requests are: decided and committed several sessions to a transaction.
        for (var round = 0; round < 2; round++)
        {
            var uploads = sessions.Select(session =>
            {
                RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(Lines(round * 2, 2)), out var content, out _).ShouldBeTrue();
                return new ReadyUpload(session, caller, new IncomingBatch(round * 100, null, content!, sealing.Fingerprint), sealing);
            });
            (await Task.WhenAll(uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)))).Select(o => ((UploadOutcome.Stored)o).Sequence).ShouldAllBe(sequence => sequence == round);
        }

        var transactions = await StoredEvents.ScalarAsync<long>(store,
            "select count(distinct xmin::text) from pam.mt_events where tenant_id = @org and stream_id = any(@sessions) and type = 'batch_uploaded'",
            ("org", _org.Id), ("sessions", sessions));
        transactions.ShouldBeLessThan(sessions.Length);

        foreach (var session in sessions)
        {
            var report = Report(await Integrity(session));
            report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
            report.GetProperty("chainLength").GetInt64().ShouldBe(4);
        }
    }

    [Fact]
    public async Task a_session_uploaded_to_while_it_is_checked_reads_intact_every_time()
    {
        var session = await _org.CreateSessionAsync();
        await StoredEvents.SeedBatchesAsync(store, _org, session, 100);
        var stop = new CancellationTokenSource();
        var uploaded = 0;
        var uploading = Task.Run(async () =>
        {
            for (var i = 100; !stop.IsCancellationRequested; i++)
            {
                (await _org.UploadAsync(session, i * 100, Lines(i, 1))).ShouldBeAccepted(i);
                uploaded++;
            }
        });

        try
        {
            for (var check = 0; check < 15; check++)
            {
                var report = Report(await Integrity(session));
                report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
            }
        }
        finally
        {
            await stop.CancelAsync();
            await uploading;
        }

        uploaded.ShouldBeGreaterThan(0);
    }

    [Fact]
    public async Task a_refused_legacy_upload_is_linked_like_any_event()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadLegacyAsync(session, Lines(0, 3))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadLegacyAsync(session, Lines(5, 3))).ShouldBeProblem(HttpStatusCode.Conflict, "logs-conflict");
        (await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/end?reason={Uri.EscapeDataString("é ✓ 𝄞 \"<>&")}", _org.GatewayToken())).Status.ShouldBe(HttpStatusCode.OK);

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("sealed").GetBoolean().ShouldBeTrue();
        report.GetProperty("chainLength").GetInt64().ShouldBe(5);
    }

    [Fact]
    public async Task a_legacy_recording_is_linked_like_a_batch()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadLegacyAsync(session, Lines(0, 3))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.EndAsync(session)).Status.ShouldBe(HttpStatusCode.OK);

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("sealed").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task an_event_appended_outside_the_service_is_reported_unlinked()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeAccepted(0);
        await using (var db = store.Host.Services.GetRequiredService<IDocumentStore>().LightweightSession(_org.Id))
        {
            db.Events.Append(session, new GapDetected(100, 5000, DateTimeOffset.UtcNow));
            await db.SaveChangesAsync();
        }

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain((4, "unlinked"));
    }

    private async Task<Guid> ThreeBatches()
    {
        var session = await _org.CreateSessionAsync();
        for (var i = 0; i < 3; i++) (await _org.UploadAsync(session, i * 100, Lines(i, 1))).ShouldBeAccepted(i);
        return session;
    }

    [Fact]
    public async Task a_batch_whose_stored_fields_were_changed_is_reported_altered()
    {
        var session = await ThreeBatches();

        // The header of batch 1 (version 4) is edited in place, its length unchanged: the content still opens.
        (await StoredEvents.ExecuteAsync(store,
            "update pam.mt_events set bdata = decode(replace(encode(bdata, 'hex'), encode('\"eventCount\":1'::bytea, 'hex'), encode('\"eventCount\":9'::bytea, 'hex')), 'hex') " +
            $"where {StoredEvents.BatchRow}", StoredEvents.BatchRowParameters(_org, session, 1))).ShouldBe(1);

        // Its batch index entry no longer agrees with it either.
        ProblemsOf(Report(await Integrity(session))).ShouldBe([(4, "altered"), (4, "index"), (5, "snapshot")]);
    }

    [Fact]
    public async Task a_batch_index_entry_pointed_at_another_batch_is_reported()
    {
        var session = await ThreeBatches();

        // Batch 0's entry now points at batch 2's row: a log page would read batches 0 and 1 as missing.
        await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_recordedbatch set data = jsonb_set(data, '{streamVersion}', to_jsonb(5)) where tenant_id = @org and id = @batchId",
            ("org", _org.Id), ("batchId", RecordedBatch.IdFor(session, 0)));

        var report = Report(await Integrity(session));

        ProblemsOf(report).ShouldBe([(3, "index")]);
        report.GetProperty("problems")[0].GetProperty("detail").GetString()!.ShouldContain("streamVersion");
    }

    [Theory]
    [InlineData("to_jsonb('five'::text)")]
    [InlineData("'99999999999999999999'::jsonb")]
    [InlineData("'null'::jsonb")]
    public async Task a_batch_index_entry_whose_stream_version_is_not_a_number_reads_as_missing_and_is_reported(string forged)
    {
        var session = await ThreeBatches();
        (await StoredEvents.ExecuteAsync(store,
            $"update pam.mt_doc_recordedbatch set data = jsonb_set(data, '{{streamVersion}}', {forged}) where tenant_id = @org and id = @batchId",
            ("org", _org.Id), ("batchId", RecordedBatch.IdFor(session, 0)))).ShouldBe(1);

        var page = await _org.LogsAsync(session);
        var report = Report(await Integrity(session));

        // The page cannot tell where its first batch starts: its batches are reported, not served as a 500.
        page.Status.ShouldBe(HttpStatusCode.OK, page.Body.ToString());
        page.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldBe(["missing", "missing", "missing"]);
        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldContain(p => p.Kind == "index");

        // A re-upload at its offset in other bytes (not answered from the node's memory of bodies).
        var again = await _org.UploadAsync(session, 0, " " + Lines(0, 1));
        again.Status.ShouldBe(HttpStatusCode.OK, again.Body.ToString());
    }

    [Fact]
    public async Task a_batch_index_entry_whose_segment_was_altered_judges_no_re_upload_and_fails_nothing()
    {
        var session = await ThreeBatches();
        (await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_recordedbatch set data = jsonb_set(data, '{segmentEnd}', to_jsonb('all'::text)) where tenant_id = @org and id = @batchId",
            ("org", _org.Id), ("batchId", RecordedBatch.IdFor(session, 0)))).ShouldBe(1);

        // Nothing trustworthy is stored at offset 0 now: a re-upload there is refused, not stored again, and not a 500.
        (await _org.UploadAsync(session, 0, " " + Lines(0, 1))).ShouldBeProblem(HttpStatusCode.Conflict, "out-of-order");
        (await _org.UploadAsync(session, 300, Lines(3, 1))).ShouldBeAccepted(3);
        ProblemsOf(Report(await Integrity(session))).ShouldContain(p => p.Kind == "index");
    }

    [Fact]
    public async Task an_index_entry_no_batch_gives_is_reported_and_judges_no_re_upload()
    {
        var session = await ThreeBatches();

        // An entry slipped into the index for batch 0's offset, claiming other content there.
        var forged = $"{session:N}:-1";
        await StoredEvents.ExecuteAsync(store,
            "create temp table forged as select * from pam.mt_doc_recordedbatch where tenant_id = @org and id = @batchId;" +
            "update forged set id = @forged, data = data || jsonb_build_object('id', @forged, 'sequence', -1, 'segmentEnd', 1, 'offsetFingerprint', 'AAAA');" +
            "insert into pam.mt_doc_recordedbatch select * from forged",
            ("org", _org.Id), ("batchId", RecordedBatch.IdFor(session, 0)), ("forged", forged));

        var report = Report(await Integrity(session));
        ProblemsOf(report).ShouldBe([(0, "index")]);
        report.GetProperty("problems")[0].GetProperty("detail").GetString()!.ShouldContain(forged);

        // A retry of batch 0 in other bytes (not answered from the node's memory of bodies) is still a duplicate.
        (await _org.UploadAsync(session, 0, " " + Lines(0, 1))).ShouldBeDuplicate();
    }

    [Fact]
    public async Task a_removed_batch_index_entry_is_reported()
    {
        var session = await ThreeBatches();
        await StoredEvents.ExecuteAsync(store, "delete from pam.mt_doc_recordedbatch where tenant_id = @org and id = @batchId",
            ("org", _org.Id), ("batchId", RecordedBatch.IdFor(session, 1)));

        ProblemsOf(Report(await Integrity(session))).ShouldBe([(4, "index")]);
    }

    [Fact]
    public async Task an_org_whose_keys_no_longer_open_is_reported_not_a_failure()
    {
        var session = await ThreeBatches();

        // The org's fingerprint key, from which the chain's key comes, is damaged; the node loads its keys again.
        (await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_orgkeyring set data = jsonb_set(data, '{fingerprintKey,wrapped}', to_jsonb(@garbage::text)) where tenant_id = @org",
            ("garbage", Convert.ToBase64String(new byte[60])), ("org", _org.Id))).ShouldBe(1);
        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);

        var report = Report(await Integrity(session));

        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        ProblemsOf(report).ShouldBe([(0, "keys")]);
    }

    [Fact]
    public async Task a_key_ring_whose_active_key_is_gone_is_reported_not_a_failure()
    {
        var session = await ThreeBatches();

        // The node forgets the ring (a rotation), then the ring's active key is pointed at a key it does not hold.
        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);
        (await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_orgkeyring set data = jsonb_set(data, '{activeKeyId}', '\"dk-gone\"') where tenant_id = @org",
            ("org", _org.Id))).ShouldBe(1);

        ProblemsOf(Report(await Integrity(session))).ShouldBe([(0, "keys")]);
    }

    [Fact]
    public async Task a_batch_whose_content_was_changed_is_reported_undecryptable()
    {
        var session = await ThreeBatches();

        // The link covers the content's fingerprint; the content itself is checked by opening it.
        await StoredEvents.ExecuteAsync(store,
            $"update pam.mt_events set bdata = set_byte(bdata, length(bdata) - 1, get_byte(bdata, length(bdata) - 1) # 1) where {StoredEvents.BatchRow}",
            StoredEvents.BatchRowParameters(_org, session, 1));

        ProblemsOf(Report(await Integrity(session))).ShouldBe([(4, "undecryptable")]);
    }

    [Fact]
    public async Task a_long_session_is_checked_window_by_window_to_its_last_event()
    {
        var session = await _org.CreateSessionAsync();
        await StoredEvents.SeedBatchesAsync(store, _org, session, 100, perCommit: 40);
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set bdata = set_byte(bdata, length(bdata) - 1, get_byte(bdata, length(bdata) - 1) # 1) where {StoredEvents.BatchRow}",
            StoredEvents.BatchRowParameters(_org, session, 70));

        var report = Report(await Integrity(session));

        // Started (1), then batches 0..99 at versions 2..101: batch 70 is version 72, past two windows.
        report.GetProperty("chainLength").GetInt64().ShouldBe(101);
        ProblemsOf(report).ShouldBe([(72, "undecryptable")]);
    }

    [Fact]
    public async Task the_same_session_id_in_another_org_is_another_stream()
    {
        var id = Guid.CreateVersion7();
        var other = store.NewOrg();
        foreach (var org in new[] { _org, other })
        {
            (await org.CreateAsync(new { id, projectId = "project-1", resourceType = "ssh", resourceName = "web-1", accountName = "root", userId = "alice", gatewayId = Org.Gateway }))
                .Status.ShouldBe(HttpStatusCode.Created);
            (await org.UploadAsync(id, 0, Lines(0, 2))).ShouldBeAccepted(0);
        }

        (await other.UploadAsync(id, 100, Lines(2, 2))).ShouldBeAccepted(1);

        var report = Report(await Integrity(id));
        report.GetProperty("intact").GetBoolean().ShouldBeTrue(report.ToString());
        report.GetProperty("chainLength").GetInt64().ShouldBe(3);
        Report(await other.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}/integrity", other.UserToken())).GetProperty("chainLength").GetInt64().ShouldBe(4);
    }

    [Fact]
    public async Task with_every_page_turn_taken_it_is_answered_busy()
    {
        var session = await _org.CreateSessionAsync();
        var turns = store.Host.Services.GetRequiredService<PageTurns>();

        using (await HeldTurns.TakeAllAsync(turns.AtOnce, () => turns.TakeAsync(CancellationToken.None)))
        {
            (await Integrity(session)).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
        }

        Report(await Integrity(session)).GetProperty("intact").GetBoolean().ShouldBeTrue();
    }

    [Theory]
    [InlineData("length=3")]
    [InlineData("head=AAAA")]
    [InlineData("length=0&head=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D")]
    [InlineData("length=3&head=not-base64")]
    [InlineData("length=3&head=AAAA")]
    public async Task a_kept_head_that_does_not_read_is_a_bad_request(string query)
    {
        var session = await _org.CreateSessionAsync();

        (await Integrity(session, query)).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task a_session_of_another_org_or_project_is_not_found_and_a_gateway_may_not_verify()
    {
        var session = await _org.CreateSessionAsync();
        var stranger = store.NewOrg();

        (await Integrity(session, token: stranger.UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await Integrity(session, token: TestKeys.Token(new TokenClaims(_org.Id, "bob", "user", Scopes: [PamScopes.Read], ProjectIds: ["project-2"]))))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await Integrity(session, token: _org.GatewayToken())).Status.ShouldBe(HttpStatusCode.Forbidden);
        (await Integrity(session, token: "")).Status.ShouldBe(HttpStatusCode.Unauthorized);
    }
}

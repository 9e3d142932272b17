using System.Text;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PamEventStore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;
using PamEventStore.Crypto;
using PamEventStore.Gateway;
using PamEventStore.Viewing;
using PamEventStore.Recording;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

/// <summary>
/// Group commit (UploadCommits), driven directly: several uploads handed over at once, as concurrent
/// requests do, and what each of them finds stored afterwards.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_committing_uploads_together(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private IDocumentStore Documents => store.Host.Services.GetRequiredService<IDocumentStore>();

    /// <summary>A committer of its own, like another node's, with the host's store and options.</summary>
    private UploadCommits NewCommits(int writers = 1, int maxSessions = 32, IDocumentStore? documents = null, ILogger<UploadCommits>? logger = null) =>
        new(documents ?? Documents, store.Host.Services.GetRequiredService<RecordingCipher>(), store.Clock, Options.Create(new UploadOptions { CommitWriters = writers, MaxSessionsPerCommit = maxSessions }), logger ?? NullLogger<UploadCommits>.Instance, store.Host.Services.GetRequiredService<SessionSignals>());

    /// <summary>The decision alone: where the chain then stands is another test's concern.</summary>
    private static UploadOutcome Decided(UploadOutcome outcome) => outcome is UploadOutcome.Stored stored ? stored with { Chain = null } : outcome;

    private sealed class CountingLogger : ILogger<UploadCommits>
    {
        public int Warnings;
        public int Informations;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) Interlocked.Increment(ref Warnings);
            if (logLevel == LogLevel.Information) Interlocked.Increment(ref Informations);
        }
    }

    private async Task<ReadyUpload> Ready(Guid sessionId, long startOffset, string events, string orgId = "", string gatewayId = Org.Gateway, Org? callerOrg = null)
    {
        orgId = orgId.Length > 0 ? orgId : (callerOrg ?? _org).Id;
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes(events), out var content, out var error).ShouldBeTrue(error?.ToString());
        var sealing = await store.Host.Services.GetRequiredService<RecordingCipher>().SealingAsync(orgId, CancellationToken.None);
        var caller = new Caller((callerOrg ?? _org).Id, "gateway-identity", "gateway", gatewayId, new HashSet<string>(), null, "test");
        return new ReadyUpload(sessionId, caller, new IncomingBatch(startOffset, null, content!, sealing.Fingerprint), sealing);
    }

    private async Task<List<(Guid Stream, long Version, string Type, long Transaction)>> EventRows(IEnumerable<Guid> sessions, Org? org = null)
    {
        await using var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "select stream_id, version, type, xmin::text::bigint from pam.mt_events where tenant_id = @tenant and stream_id = any(@streams) order by stream_id, version",
            connection);
        command.Parameters.AddWithValue("tenant", (org ?? _org).Id);
        command.Parameters.AddWithValue("streams", sessions.ToArray());
        var rows = new List<(Guid, long, string, long)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) rows.Add((reader.GetGuid(0), reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3)));
        return rows;
    }

    [Fact]
    public async Task uploads_of_many_sessions_handed_over_at_once_share_transactions_and_are_each_stored()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => _org.CreateSessionAsync()));
        var uploads = await Task.WhenAll(sessions.Select(s => Ready(s, 0, Lines(0, 3))));
        await using var commits = NewCommits();

        var outcomes = await Task.WhenAll(uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)));

        outcomes.Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));
        var batches = (await EventRows(sessions)).Where(e => e.Type == "batch_uploaded").ToList();
        batches.Select(b => b.Stream).ShouldBe(sessions.Order(), ignoreOrder: true);

        // Handed over within microseconds while a transaction takes milliseconds: at most the first
        // is written alone, the rest wait for the next transaction together.
        batches.Select(b => b.Transaction).Distinct().Count().ShouldBeLessThanOrEqualTo(5);
    }

    [Fact]
    public async Task uploads_of_many_orgs_handed_over_at_once_are_each_stored_under_their_own_org()
    {
        var orgs = Enumerable.Range(0, 9).Select(_ => store.NewOrg()).ToList();
        var sessions = await Task.WhenAll(orgs.SelectMany(org => new[] { org, org }).Select(async org => (Org: org, Session: await org.CreateSessionAsync())));
        var uploads = await Task.WhenAll(sessions.Select(s => Ready(s.Session, 0, Lines(0, 1), callerOrg: s.Org)));
        await using var commits = NewCommits();

        (await Task.WhenAll(uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)))).Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));

        foreach (var org in orgs)
        {
            var own = sessions.Where(s => s.Org == org).Select(s => s.Session).ToList();
            (await EventRows(sessions.Select(s => s.Session), org)).Where(e => e.Type == "batch_uploaded").Select(e => e.Stream).ShouldBe(own, ignoreOrder: true);
        }
    }

    [Fact]
    public async Task a_transaction_holds_no_more_sessions_than_configured_and_its_size_is_measured()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => _org.CreateSessionAsync()));
        var uploads = await Task.WhenAll(sessions.Select(s => Ready(s, 0, Lines(0, 1))));
        var measured = new System.Collections.Concurrent.ConcurrentBag<int>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument is { Name: "pam.uploads.sessions_per_commit" } && instrument.Meter.Name == UploadCommits.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<int>((_, value, _, _) => measured.Add(value));
        listener.Start();
        await using var commits = NewCommits(maxSessions: 4);

        (await Task.WhenAll(uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)))).ShouldAllBe(o => o is UploadOutcome.Stored);

        var transactions = (await EventRows(sessions)).Where(e => e.Type == "batch_uploaded").GroupBy(e => e.Transaction).Select(t => t.Count()).ToList();
        transactions.Sum().ShouldBe(20);
        transactions.Max().ShouldBe(4);
        measured.ShouldContain(4);
        measured.Sum().ShouldBe(20);
        measured.ShouldAllBe(sessionsInOne => sessionsInOne <= 4);
    }

    [Fact]
    public async Task a_sessions_uploads_handed_over_at_once_are_decided_in_the_order_they_came()
    {
        var session = await _org.CreateSessionAsync();
        var uploads = new[] { await Ready(session, 0, Lines(0, 2)), await Ready(session, 200, Lines(2, 2)), await Ready(session, 400, Lines(4, 2)), await Ready(session, 200, Lines(2, 2)) };
        await using var commits = NewCommits();

        var outcomes = await Task.WhenAll(uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)));

        outcomes.Select(Decided).ShouldBe([new UploadOutcome.Stored(0), new UploadOutcome.Stored(1), new UploadOutcome.Stored(2), new UploadOutcome.AlreadyStored()]);
        var view = await _org.SessionAsync(session);
        view.GetProperty("batchCount").GetInt64().ShouldBe(3);
        view.GetProperty("complete").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task a_session_whose_stored_state_does_not_read_does_not_take_the_others_of_its_group_with_it()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _org.CreateSessionAsync()));
        await StoredEvents.ExecuteAsync(store, "update pam.mt_doc_pamsession set data = jsonb_set(data, '{status}', '\"paused\"') where tenant_id = @org and id = @session",
            ("org", _org.Id), ("session", sessions[0]));
        var uploads = await Task.WhenAll(sessions.Select(s => Ready(s, 0, Lines(0, 2))));
        await using var commits = NewCommits();

        var all = uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)).ToArray();

        await Should.ThrowAsync<UnreadableSessionException>(all[0]);
        (await Task.WhenAll(all.Skip(1))).Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));
        var stored = await EventRows(sessions);
        stored.Where(e => e.Type == "batch_uploaded").Select(e => e.Stream).ShouldBe(sessions.Skip(1), ignoreOrder: true);
        stored.ShouldNotContain(e => e.Stream == sessions[0] && e.Type != "session_started");
    }

    [Fact]
    public async Task an_upload_that_fails_does_not_take_the_others_of_its_group_with_it()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _org.CreateSessionAsync()));
        var good = await Task.WhenAll(sessions.Skip(1).Select(s => Ready(s, 0, Lines(0, 2))));

        // Sealed with another org's keys: the cipher refuses it once the session has decided to store it.
        var otherOrg = store.NewOrg();
        var bad = await Ready(sessions[0], 0, Lines(0, 2), orgId: otherOrg.Id);
        await using var commits = NewCommits();

        var failing = commits.CommitAsync(bad, CancellationToken.None);
        var outcomes = await Task.WhenAll(good.Select(u => commits.CommitAsync(u, CancellationToken.None)));

        await Should.ThrowAsync<ArgumentException>(failing);
        outcomes.Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));

        // Each retried alone after its group failed: each answers where its own session's chain then stands.
        foreach (var (session, outcome) in sessions.Skip(1).Zip(outcomes))
        {
            var view = await _org.SessionAsync(session);
            var chain = ((UploadOutcome.Stored)outcome).Chain.ShouldNotBeNull();
            chain.Length.ShouldBe(view.GetProperty("chainLength").GetInt64());
            Convert.ToBase64String(chain.Head).ShouldBe(view.GetProperty("chainHead").GetString());
        }

        var stored = await EventRows(sessions);
        stored.Where(e => e.Type == "batch_uploaded").Select(e => e.Stream).ShouldBe(sessions.Skip(1), ignoreOrder: true);
        stored.ShouldNotContain(e => e.Stream == sessions[0] && e.Type != "session_started");
    }

    [Fact]
    public async Task two_nodes_racing_the_same_uploads_store_each_batch_once()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => _org.CreateSessionAsync()));
        await using var nodeA = NewCommits(writers: 2);
        await using var nodeB = NewCommits(writers: 3);

        for (var round = 0; round < 5; round++)
        {
            var offset = round * 100L;
            var uploads = await Task.WhenAll(sessions.Select(s => Ready(s, offset, Lines(round, 1))));
            var outcomes = await Task.WhenAll(uploads.SelectMany(u => new[] { nodeA, nodeB, nodeA, nodeB }.Select(node => node.CommitAsync(u, CancellationToken.None))));

            outcomes.Count(o => o is UploadOutcome.Stored).ShouldBe(sessions.Length, $"round {round}");
            outcomes.Count(o => o is UploadOutcome.AlreadyStored).ShouldBe(3 * sessions.Length, $"round {round}");
        }

        var stored = await EventRows(sessions);
        foreach (var session in sessions)
        {
            stored.Count(e => e.Stream == session && e.Type == "batch_uploaded").ShouldBe(5);
            stored.Where(e => e.Stream == session).Select(e => e.Version).ShouldBe(Enumerable.Range(1, 7).Select(v => (long)v));
        }
    }

    [Fact]
    public async Task a_group_waiting_on_a_locked_session_does_not_hold_up_other_sessions()
    {
        var locked = await _org.CreateSessionAsync();
        var others = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => _org.CreateSessionAsync()));
        await using var commits = NewCommits(writers: 2);

        // Someone else (another node, a session being ended) holds the session's stream lock.
        var holder = Documents.LightweightSession(_org.Id);
        Task<UploadOutcome> waiting;
        try
        {
            await holder.Events.FetchForExclusiveWriting<PamSession>(locked);
            waiting = commits.CommitAsync(await Ready(locked, 0, Lines(0, 1)), CancellationToken.None);
            await UntilAWriterWaitsOnALockAsync();

            var outcomes = await Task.WhenAll(others.Select(async s => await commits.CommitAsync(await Ready(s, 0, Lines(0, 1)), CancellationToken.None)))
                .WaitAsync(TimeSpan.FromSeconds(10));

            outcomes.Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));
            waiting.IsCompleted.ShouldBeFalse();
        }
        finally
        {
            await holder.DisposeAsync();
        }

        Decided(await waiting.WaitAsync(TimeSpan.FromSeconds(10))).ShouldBe(new UploadOutcome.Stored(0));
    }

    [Fact]
    public async Task a_session_appended_to_elsewhere_while_its_upload_is_written_has_it_decided_again_under_its_lock()
    {
        var session = await _org.CreateSessionAsync();
        var logs = new CountingLogger();
        await using var commits = NewCommits(logger: logs);
        Decided(await commits.CommitAsync(await Ready(session, 0, Lines(0, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(0));

        // Another node holds the stream and ends the session, after this node read the snapshot it decides
        // the next upload on: its append waits for the stream, then finds the version it expected taken.
        Task<UploadOutcome> upload;
        await using (var elsewhere = Documents.LightweightSession(_org.Id))
        {
            var stream = await elsewhere.Events.FetchForExclusiveWriting<PamSession>(session);
            upload = commits.CommitAsync(await Ready(session, 100, Lines(2, 2)), CancellationToken.None);
            await UntilAWriterWaitsOnALockAsync();
            var sealing = await store.Host.Services.GetRequiredService<RecordingCipher>().SealingAsync(_org.Id, CancellationToken.None);
            stream.AppendLinked(sealing.Chain, _org.Id, session, [new SessionEnded(store.Clock.GetUtcNow(), new Actor("user", "user:alice", null, "elsewhere"), "ended elsewhere")]);
            await elsewhere.SaveChangesAsync();
        }

        // Decided again on the ended session (within its grace), appended after the end, linked onto it.
        var outcome = await upload.WaitAsync(TimeSpan.FromSeconds(10));
        Decided(outcome).ShouldBe(new UploadOutcome.Stored(1));
        logs.Informations.ShouldBe(1);
        (await EventRows([session])).Select(e => (e.Version, e.Type)).ShouldBe(
            [(1, "session_started"), (2, "session_activated"), (3, "batch_uploaded"), (4, "session_ended"), (5, "batch_uploaded")]);
        await ShouldVerifyEndingAtAsync(session, outcome, 5);
    }

    /// <summary>The session's integrity check finds it intact, its chain <paramref name="length"/> long and ending where the upload was answered it stands.</summary>
    private async Task ShouldVerifyEndingAtAsync(Guid session, UploadOutcome lastUpload, long length)
    {
        var integrity = (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity", _org.UserToken())).Body.GetProperty("integrity");
        integrity.GetProperty("intact").GetBoolean().ShouldBeTrue(integrity.ToString());
        integrity.GetProperty("chainLength").GetInt64().ShouldBe(length);
        integrity.GetProperty("chainHead").GetString().ShouldBe(Convert.ToBase64String(((UploadOutcome.Stored)lastUpload).Chain!.Head));
    }

    [Fact]
    public async Task a_commit_the_database_lost_does_not_answer_its_batch_sent_again_as_stored()
    {
        var session = await _org.CreateSessionAsync();
        await using var commits = NewCommits();
        Decided(await commits.CommitAsync(await Ready(session, 0, Lines(0, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(0));
        Decided(await commits.CommitAsync(await Ready(session, 100, Lines(2, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(1));

        // A failover or a restore loses the last commit (batch 1, the stream's version 4), after the node wrote it.
        await StoredEvents.RewindAsync(store, _org, session, 3);

        // The gateway sends batch 1 again: it is stored, not answered as a duplicate of what is no longer there.
        Decided(await commits.CommitAsync(await Ready(session, 100, Lines(2, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(1));
        Decided(await commits.CommitAsync(await Ready(session, 200, Lines(4, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(2));
        (await EventRows([session])).Select(e => (e.Version, e.Type)).ShouldBe(
            [(1, "session_started"), (2, "session_activated"), (3, "batch_uploaded"), (4, "batch_uploaded"), (5, "batch_uploaded")]);
    }

    [Fact]
    public async Task a_session_written_again_to_the_same_length_after_a_lost_commit_is_appended_onto_its_history_as_stored()
    {
        var session = await _org.CreateSessionAsync();
        await using var nodeA = NewCommits();
        await using var nodeB = NewCommits();
        Decided(await nodeA.CommitAsync(await Ready(session, 0, Lines(0, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(0));
        Decided(await nodeA.CommitAsync(await Ready(session, 100, Lines(2, 2)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(1));

        // Batch 1 is lost to a restore, and another node stores other content as batch 1: the stream is at
        // version 4 again, as node A wrote it, but with another history.
        await StoredEvents.RewindAsync(store, _org, session, 3);
        Decided(await nodeB.CommitAsync(await Ready(session, 100, Lines(7, 3)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(1));

        var outcome = await nodeA.CommitAsync(await Ready(session, 400, Lines(10, 2)), CancellationToken.None);

        Decided(outcome).ShouldBe(new UploadOutcome.Stored(2));
        await ShouldVerifyEndingAtAsync(session, outcome, 5);
    }

    private const string BackendsWaitingOnLocks = "from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()";

    /// <summary>Until a writer's transaction is waiting on a stream lock held elsewhere.</summary>
    private Task UntilAWriterWaitsOnALockAsync() =>
        WaitUntilAsync(async () => await StoredEvents.ScalarAsync<long>(store, "select count(*) " + BackendsWaitingOnLocks) > 0);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the condition never held");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// The only writer waits on a lock held elsewhere with <paramref name="first"/>, <paramref name="second"/>
    /// queues behind it, then <paramref name="callerGone"/> is cancelled and <paramref name="whileStalled"/>
    /// runs; then the lock is let go.
    /// </summary>
    private async Task<(Task<UploadOutcome> First, Task<UploadOutcome> Second)> StallThenLeaveAsync(
        UploadCommits commits, ReadyUpload first, CancellationToken firstCaller, ReadyUpload second, CancellationTokenSource callerGone, Func<Task>? whileStalled = null)
    {
        await using var holder = Documents.LightweightSession(_org.Id);
        await holder.Events.FetchForExclusiveWriting<PamSession>(first.SessionId);
        var firstOutcome = commits.CommitAsync(first, firstCaller);
        await UntilAWriterWaitsOnALockAsync();
        var secondOutcome = commits.CommitAsync(second, callerGone.Token);
        await callerGone.CancelAsync();
        if (whileStalled is not null) await whileStalled();
        return (firstOutcome, secondOutcome);
    }

    [Fact]
    public async Task an_upload_whose_caller_went_away_before_it_was_taken_is_not_written()
    {
        var locked = await _org.CreateSessionAsync();
        var abandoned = await _org.CreateSessionAsync();
        await using var commits = NewCommits(writers: 1);
        using var callerGone = new CancellationTokenSource();

        var (first, second) = await StallThenLeaveAsync(commits, await Ready(locked, 0, Lines(0, 1)), CancellationToken.None, await Ready(abandoned, 0, Lines(0, 1)), callerGone);

        Decided(await first.WaitAsync(TimeSpan.FromSeconds(10))).ShouldBe(new UploadOutcome.Stored(0));
        await Should.ThrowAsync<OperationCanceledException>(second);
        await commits.CommitAsync(await Ready(locked, 100, Lines(1, 1)), CancellationToken.None);
        (await EventRows([abandoned])).Select(e => e.Type).ShouldBe(["session_started"]);
    }

    [Fact]
    public async Task an_upload_holds_its_share_of_the_nodes_limit_until_it_is_decided_or_dropped_not_until_its_caller_leaves()
    {
        var locked = await _org.CreateSessionAsync();
        var abandoned = await _org.CreateSessionAsync();
        var admission = new UploadAdmission(Options.Create(new UploadOptions { MaxBytesInFlight = 1_000 }));
        await using var commits = NewCommits(writers: 1);
        using var callerGone = new CancellationTokenSource();

        // Both callers leave while the database stalls: the first's upload is in a group, the second's queued.
        await StallThenLeaveAsync(
            commits, (await Ready(locked, 0, Lines(0, 1))) with { Held = admission.TryAdmit(400) }, callerGone.Token,
            (await Ready(abandoned, 0, Lines(0, 1))) with { Held = admission.TryAdmit(300) }, callerGone,
            whileStalled: () =>
            {
                admission.Held.ShouldBe(700);
                admission.TryAdmit(301).ShouldBeNull();
                return Task.CompletedTask;
            });

        // The first is committed once the lock is let go, the second dropped when its turn comes: both give their share back.
        await WaitUntilAsync(() => Task.FromResult(admission.Held == 0));
        (await EventRows([locked])).Select(e => e.Type).ShouldContain("batch_uploaded");
        (await EventRows([abandoned])).Select(e => e.Type).ShouldBe(["session_started"]);
    }

    [Fact]
    public async Task when_the_database_is_unreachable_every_upload_of_the_group_fails_at_once_without_retrying_each()
    {
        using var unreachable = DocumentStore.For(opts => opts.ConfigurePamStore("Host=127.0.0.1;Port=1;Database=none;Username=none;Timeout=2"));
        var logger = new CountingLogger();
        var uploads = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Ready(Guid.NewGuid(), 0, Lines(0, 1))));
        await using var commits = NewCommits(documents: unreachable, logger: logger);

        var attempts = uploads.Select(u => commits.CommitAsync(u, CancellationToken.None)).ToList();

        foreach (var attempt in attempts) await Should.ThrowAsync<NpgsqlException>(attempt.WaitAsync(TimeSpan.FromSeconds(20)));
        logger.Warnings.ShouldBe(0);
    }

    [Fact]
    public async Task when_the_database_drops_a_groups_connection_its_uploads_fail_at_once_without_retrying_each()
    {
        var first = await _org.CreateSessionAsync();
        var sessions = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => _org.CreateSessionAsync()));
        var logger = new CountingLogger();
        await using var commits = NewCommits(writers: 1, logger: logger);

        var holder = Documents.LightweightSession(_org.Id);
        try
        {
            // The writer waits on the first session's lock while the next three queue up as one group,
            // which then waits on the lock of one of its sessions; each wait ends with its backend killed.
            await holder.Events.FetchForExclusiveWriting<PamSession>(first);
            await holder.Events.FetchForExclusiveWriting<PamSession>(sessions[0]);
            var alone = commits.CommitAsync(await Ready(first, 0, Lines(0, 1)), CancellationToken.None);
            await UntilAWriterWaitsOnALockAsync();
            var group = await Task.WhenAll(sessions.Select(async s => await Ready(s, 0, Lines(0, 1))));
            var grouped = group.Select(u => commits.CommitAsync(u, CancellationToken.None)).ToList();

            await TerminateBackendsWaitingOnLocksAsync();
            // The database's failure, not the test's wait running out.
            DatabaseFailures.IsUnavailable(await Should.ThrowAsync<Exception>(alone.WaitAsync(TimeSpan.FromSeconds(10)))).ShouldBeTrue();
            await UntilAWriterWaitsOnALockAsync();
            await TerminateBackendsWaitingOnLocksAsync();

            foreach (var upload in grouped) DatabaseFailures.IsUnavailable(await Should.ThrowAsync<Exception>(upload.WaitAsync(TimeSpan.FromSeconds(10)))).ShouldBeTrue();
            logger.Warnings.ShouldBe(0);
        }
        finally
        {
            await holder.DisposeAsync();
        }

        (await EventRows(sessions)).ShouldAllBe(e => e.Type == "session_started");
    }

    private async Task TerminateBackendsWaitingOnLocksAsync() =>
        (await StoredEvents.ScalarAsync<long>(store, "select count(pg_terminate_backend(pid)) " + BackendsWaitingOnLocks)).ShouldBeGreaterThan(0);

    [Fact]
    public async Task what_is_waiting_when_the_node_stops_is_still_committed_and_later_uploads_commit_alone()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => _org.CreateSessionAsync()));
        var commits = NewCommits();
        var waiting = (await Task.WhenAll(sessions.Select(s => Ready(s, 0, Lines(0, 1))))).Select(u => commits.CommitAsync(u, CancellationToken.None)).ToList();

        await commits.DisposeAsync();

        (await Task.WhenAll(waiting)).Select(Decided).ShouldAllBe(o => o == new UploadOutcome.Stored(0));
        Decided(await commits.CommitAsync(await Ready(sessions[0], 100, Lines(1, 1)), CancellationToken.None)).ShouldBe(new UploadOutcome.Stored(1));
    }

    [Fact]
    public async Task an_upload_for_another_gateways_or_a_missing_session_is_refused_without_touching_the_group()
    {
        var mine = await _org.CreateSessionAsync();
        var theirs = await _org.CreateSessionAsync(gatewayId: "gw-2");
        await using var commits = NewCommits();

        var outcomes = await Task.WhenAll(
            commits.CommitAsync(await Ready(mine, 0, Lines(0, 1)), CancellationToken.None),
            commits.CommitAsync(await Ready(theirs, 0, Lines(0, 1)), CancellationToken.None),
            commits.CommitAsync(await Ready(Guid.NewGuid(), 0, Lines(0, 1)), CancellationToken.None));

        outcomes.Select(Decided).ShouldBe([new UploadOutcome.Stored(0), new UploadOutcome.OtherGateway(), new UploadOutcome.NoSuchSession()]);
        (await EventRows([theirs])).Select(e => e.Type).ShouldBe(["session_started"]);
    }
}

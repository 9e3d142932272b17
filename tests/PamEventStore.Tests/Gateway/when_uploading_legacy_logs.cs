using System.Net;
using Marten;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

[Collection(PamStoreCollection.Name)]
public sealed class when_uploading_legacy_logs(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    [Fact]
    public async Task the_whole_recording_is_stored_once_and_the_session_answered()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");

        var reply = await _org.UploadLegacyAsync(session, Queries(3));

        reply.Status.ShouldBe(HttpStatusCode.OK);
        var view = reply.Body.GetProperty("session");
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeTrue();
        view.GetProperty("eventCount").GetInt64().ShouldBe(3);
        view.GetProperty("status").GetString().ShouldBe("active");
    }

    [Fact]
    public async Task the_same_logs_again_are_answered_as_before_and_stored_once()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        var first = await _org.UploadLegacyAsync(session, Queries(3));

        var again = await _org.UploadLegacyAsync(session, Queries(3));

        again.Status.ShouldBe(HttpStatusCode.OK);
        again.Body.GetProperty("session").GetRawText().ShouldBe(first.Body.GetProperty("session").GetRawText());

        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        (await query.Events.FetchStreamAsync(session)).Count(e => e.EventTypeName == "legacy_logs_uploaded").ShouldBe(1);
    }

    [Fact]
    public async Task different_logs_for_a_session_that_has_them_are_refused_and_the_first_kept()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        await _org.UploadLegacyAsync(session, Queries(3));

        (await _org.UploadLegacyAsync(session, Queries(3, "drop table"))).ShouldBeProblem(HttpStatusCode.Conflict, "logs-conflict");
        (await _org.UploadLegacyAsync(session, Queries(3, "drop table"))).ShouldBeProblem(HttpStatusCode.Conflict, "logs-conflict");

        var logs = (await _org.LogsAsync(session)).Body.GetProperty("logs");
        logs[0].GetProperty("input").GetString().ShouldBe("select 0");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task an_empty_recording_is_accepted()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadLegacyAsync(session, "[]")).Status.ShouldBe(HttpStatusCode.OK);
        var page = (await _org.LogsAsync(session)).Body;
        page.GetProperty("logs").GetArrayLength().ShouldBe(0);

        // It has no events, so no first or last event time (not the year 1).
        var entry = page.GetProperty("batches").EnumerateArray().ShouldHaveSingleItem();
        entry.GetProperty("eventCount").GetInt32().ShouldBe(0);
        entry.GetProperty("firstEventAt").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.Null);
        entry.GetProperty("lastEventAt").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.Null);
    }

    [Fact]
    public async Task after_the_grace_window_of_an_ended_session_new_logs_are_refused()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        await _org.EndAsync(session);
        store.Clock.Advance(TimeSpan.FromMinutes(3));

        (await _org.UploadLegacyAsync(session, Queries(1))).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");
        (await _org.UploadLegacyAsync(session, Queries(1))).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");

        var view = await _org.SessionAsync(session);
        view.GetProperty("lateRefusedCount").GetInt32().ShouldBe(1);
        view.GetProperty("complete").GetBoolean().ShouldBeFalse();
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
    }

    [Theory]
    [InlineData("""{"log":[]}""")]
    [InlineData("""{"logs":{}}""")]
    [InlineData("""[]""")]
    [InlineData("""{"logs":[{"timestamp":"2026-12-04T10:00:00Z","input":"x"}]}""")]
    [InlineData("""{"logs":[]""")]
    public async Task a_malformed_body_is_refused(string body)
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");

        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/logs", _org.GatewayToken(),
            new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-recording");
        (await _org.SessionAsync(session)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task after_the_legacy_upload_the_session_takes_no_more_batches()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        await _org.UploadLegacyAsync(session, Queries(2));

        (await _org.UploadAsync(session, 0, Batch(Query(5, "select 5")))).ShouldBeProblem(HttpStatusCode.Conflict, "legacy-logs-stored");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task a_batch_refused_after_the_legacy_upload_is_recorded_as_a_conflict_once(int legacyEvents)
    {
        // Even an empty legacy upload is the whole recording: a batch after it is not lost without a trace.
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        (await _org.UploadLegacyAsync(session, Queries(legacyEvents))).Status.ShouldBe(HttpStatusCode.OK);
        var before = (await _org.SessionAsync(session)).GetProperty("chainLength").GetInt64();

        for (var attempt = 0; attempt < 3; attempt++)
            (await _org.UploadAsync(session, 0, Batch(Query(5, "select 5")))).ShouldBeProblem(HttpStatusCode.Conflict, "legacy-logs-stored");

        var view = await _org.SessionAsync(session);
        view.GetProperty("conflictCount").GetInt32().ShouldBe(1);
        view.GetProperty("chainLength").GetInt64().ShouldBe(before + 1);
        (await StoredEvents.ScalarAsync<string>(store, "select string_agg(data ->> 'reason', ',') from pam.mt_events where tenant_id = @org and stream_id = @session and type = 'batch_conflict_rejected'",
            ("org", _org.Id), ("session", session))).ShouldBe("legacy-logs-stored");

        // Other content is recorded too.
        (await _org.UploadAsync(session, 0, Batch(Query(6, "select 6")))).ShouldBeProblem(HttpStatusCode.Conflict, "legacy-logs-stored");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(2);
    }

    [Fact]
    public async Task a_legacy_upload_after_batches_reads_as_one_more_page_after_them()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        (await _org.UploadAsync(session, 0, Batch(Query(0, "select batch")))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadLegacyAsync(session, Queries(3, "select legacy"))).Status.ShouldBe(HttpStatusCode.OK);

        var batches = (await _org.LogsAsync(session, "offset=0&limit=100")).Body;
        var legacy = (await _org.LogsAsync(session, "offset=1&limit=100")).Body;
        var after = (await _org.LogsAsync(session, "offset=2&limit=100")).Body;

        batches.GetProperty("logs")[0].GetProperty("input").GetString().ShouldBe("select batch");
        batches.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        legacy.GetProperty("logs").EnumerateArray().Select(e => e.GetProperty("input").GetString()).ShouldBe(["select legacy 0", "select legacy 1", "select legacy 2"]);
        legacy.GetProperty("batchCount").GetInt32().ShouldBe(1);
        legacy.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
        after.GetProperty("logs").GetArrayLength().ShouldBe(0);
    }
}

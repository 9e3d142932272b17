using System.Net;
using Marten;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

[Collection(PamStoreCollection.Name)]
public sealed class when_uploading_batches(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private async Task<IReadOnlyList<string>> StoredEventTypes(Guid sessionId)
    {
        await using var session = store.Host.DocumentStore().QuerySession(_org.Id);
        var events = await session.Events.FetchStreamAsync(sessionId);
        return events.Select(e => e.EventTypeName).ToList();
    }

    [Fact]
    public async Task a_new_offset_is_stored_as_the_next_batch()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(sequence: 0);
        (await _org.UploadAsync(session, 300, Lines(3, 2))).ShouldBeAccepted(sequence: 1);
        (await _org.UploadAsync(session, 500, Lines(5, 1))).ShouldBeAccepted(sequence: 2);

        var view = await _org.SessionAsync(session);
        view.GetProperty("batchCount").GetInt64().ShouldBe(3);
        view.GetProperty("eventCount").GetInt64().ShouldBe(6);
        view.GetProperty("complete").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task the_first_upload_activates_a_starting_session()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("starting");

        await _org.UploadAsync(session, 0, Lines(0, 1));

        var view = await _org.SessionAsync(session);
        view.GetProperty("status").GetString().ShouldBe("active");
        view.GetProperty("startedAt").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.String);
        (await StoredEventTypes(session)).ShouldBe(["session_started", "session_activated", "batch_uploaded"]);
    }

    [Fact]
    public async Task the_same_batch_again_is_a_duplicate_and_stores_nothing()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 3));

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeDuplicate();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeDuplicate();

        (await StoredEventTypes(session)).Count(t => t == "batch_uploaded").ShouldBe(1);
    }

    [Fact]
    public async Task the_same_events_formatted_differently_are_still_a_duplicate()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));

        var reformatted = Lines(0, 2).Replace(",", ", ").Replace("[", "[\n  ");
        (await _org.UploadAsync(session, 0, reformatted)).ShouldBeDuplicate();
    }

    [Fact]
    public async Task an_old_batch_sent_again_after_newer_ones_is_a_duplicate()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        await _org.UploadAsync(session, 200, Lines(2, 2));
        await _org.UploadAsync(session, 400, Lines(4, 2));

        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeDuplicate();
        (await _org.UploadAsync(session, 200, Lines(2, 2))).ShouldBeDuplicate();
        (await StoredEventTypes(session)).Count(t => t == "batch_uploaded").ShouldBe(3);
    }

    [Fact]
    public async Task a_reupload_that_extends_the_stored_batch_stores_only_the_new_events()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 3));

        // The gateway crashed before saving its offset and read further on restart.
        (await _org.UploadAsync(session, 0, Lines(0, 5))).ShouldBeAccepted(sequence: 1);
        (await _org.UploadAsync(session, 0, Lines(0, 5))).ShouldBeDuplicate();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeDuplicate();

        var page = await _org.LogsAsync(session);
        page.Body.GetProperty("logs").GetArrayLength().ShouldBe(5);
        page.Body.GetProperty("batches")[1].GetProperty("eventCount").GetInt32().ShouldBe(2);
        (await _org.SessionAsync(session)).GetProperty("eventCount").GetInt64().ShouldBe(5);
    }

    [Fact]
    public async Task other_content_at_a_stored_offset_is_a_recorded_conflict_and_the_stored_batch_is_kept()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 3));

        var tampered = Batch(Terminal(0, "rm -rf /\r\n"), Terminal(1, "line 1\r\n"), Terminal(2, "line 2\r\n"));
        (await _org.UploadAsync(session, 0, tampered)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");

        var logs = (await _org.LogsAsync(session)).Body.GetProperty("logs");
        logs.GetArrayLength().ShouldBe(3);
        logs[0].GetProperty("data").GetString().ShouldBe(Convert.ToBase64String("line 0\r\n"u8.ToArray()));
        (await StoredEventTypes(session)).ShouldContain("batch_conflict_rejected");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task a_conflicting_batch_sent_again_on_every_tick_is_refused_each_time_and_recorded_once()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 3));
        var tampered = Batch(Terminal(0, "rm -rf /\r\n"), Terminal(1, "line 1\r\n"));

        for (var tick = 0; tick < 5; tick++) (await _org.UploadAsync(session, 0, tampered)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");

        (await StoredEventTypes(session)).Count(type => type == "batch_conflict_rejected").ShouldBe(1);
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task fewer_events_than_stored_that_are_not_its_first_events_are_a_conflict()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 3));

        var altered = Batch(Terminal(0, "line 0\r\n"), Terminal(1, "line one\r\n"));
        (await _org.UploadAsync(session, 0, altered)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task an_upload_overtaken_by_its_longer_retry_is_a_duplicate_and_records_nothing()
    {
        var session = await _org.CreateSessionAsync();

        // The gateway's first request stalled; its next tick sent everything from the same offset, which
        // was stored first. The stalled request then arrives.
        (await _org.UploadAsync(session, 0, Lines(0, 5))).ShouldBeAccepted(0);
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeDuplicate();

        (await StoredEventTypes(session)).ShouldNotContain("batch_conflict_rejected");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(0);
        (await _org.LogsAsync(session)).Body.GetProperty("logs").GetArrayLength().ShouldBe(5);
    }

    [Fact]
    public async Task the_first_events_of_an_offset_stored_in_two_batches_are_a_duplicate()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        (await _org.UploadAsync(session, 0, Lines(0, 5))).ShouldBeAccepted(sequence: 1);

        // Four events: both of the first batch and two of the three the second one stored.
        (await _org.UploadAsync(session, 0, Lines(0, 4))).ShouldBeDuplicate();
        (await _org.UploadAsync(session, 0, Lines(0, 1))).ShouldBeDuplicate();

        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(0);
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt64().ShouldBe(2);
    }

    [Theory]
    [InlineData("bdata = set_byte(bdata, length(bdata) - 1, get_byte(bdata, length(bdata) - 1) # 1)")]
    [InlineData("bdata = null")]
    public async Task the_first_events_of_a_stored_batch_that_no_longer_opens_are_a_recorded_conflict(string alteration)
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 5));
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set {alteration} where {StoredEvents.BatchRow}", StoredEvents.BatchRowParameters(_org, session, 0));

        // What is stored cannot show the upload is its beginning: refused and recorded, as any other content.
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task the_first_events_of_an_older_offset_are_a_duplicate()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 5));
        await _org.UploadAsync(session, 500, Lines(5, 2));

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeDuplicate();

        var altered = Batch(Terminal(0, "line 0\r\n"), Terminal(1, "line one\r\n"));
        (await _org.UploadAsync(session, 0, altered)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
        (await _org.SessionAsync(session)).GetProperty("conflictCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task a_conflicting_extension_of_an_old_offset_is_refused()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        await _org.UploadAsync(session, 200, Lines(2, 2));

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
    }

    [Fact]
    public async Task an_old_offset_with_nothing_stored_is_out_of_order()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        await _org.UploadAsync(session, 400, Lines(4, 2));

        (await _org.UploadAsync(session, 200, Lines(2, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "out-of-order");
        (await StoredEventTypes(session)).Count(t => t == "batch_uploaded").ShouldBe(2);
    }

    [Fact]
    public async Task a_batch_starting_past_the_end_of_the_previous_one_records_the_gap_and_is_accepted()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 200);

        (await _org.UploadAsync(session, 350, Lines(5, 1), endOffset: 450)).ShouldBeAccepted(sequence: 1);

        var view = await _org.SessionAsync(session);
        view.GetProperty("complete").GetBoolean().ShouldBeFalse();
        view.GetProperty("gapCount").GetInt32().ShouldBe(1);
        view.GetProperty("missingBytes").GetInt64().ShouldBe(150);
        view.GetProperty("gaps")[0].GetProperty("from").GetInt64().ShouldBe(200);
        view.GetProperty("gaps")[0].GetProperty("to").GetInt64().ShouldBe(350);
        (await StoredEventTypes(session)).TakeLast(2).ShouldBe(["gap_detected", "batch_uploaded"]);
    }

    [Fact]
    public async Task batches_that_follow_each_other_exactly_leave_the_session_complete()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 200);
        await _org.UploadAsync(session, 200, Lines(2, 2), endOffset: 400);

        (await _org.SessionAsync(session)).GetProperty("complete").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task a_first_batch_that_does_not_start_at_zero_is_missing_the_beginning()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 1000, Lines(0, 1))).ShouldBeAccepted(sequence: 0);

        var view = await _org.SessionAsync(session);
        view.GetProperty("complete").GetBoolean().ShouldBeFalse();
        view.GetProperty("gaps")[0].GetProperty("from").GetInt64().ShouldBe(0);
    }

    [Fact]
    public async Task a_batch_starting_inside_the_previous_one_is_refused_and_recorded()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 200);

        (await _org.UploadAsync(session, 100, Lines(1, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-overlap");
        (await StoredEventTypes(session)).ShouldContain("batch_conflict_rejected");
    }

    [Fact]
    public async Task an_ended_session_still_takes_the_final_flush_within_its_grace_window()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        await _org.EndAsync(session);

        (await _org.UploadAsync(session, 100, Lines(1, 1))).ShouldBeAccepted(sequence: 1);
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("ended");
    }

    [Fact]
    public async Task an_ended_session_refuses_new_batches_after_its_grace_window_but_still_answers_retries()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        await _org.EndAsync(session);
        store.Clock.Advance(TimeSpan.FromMinutes(3));

        (await _org.UploadAsync(session, 100, Lines(1, 1))).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");
        (await _org.UploadAsync(session, 0, Lines(0, 1))).ShouldBeDuplicate();
    }

    [Fact]
    public async Task a_final_flush_refused_after_the_grace_window_is_recorded_and_the_session_shows_it_incomplete()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        await _org.EndAsync(session);
        store.Clock.Advance(TimeSpan.FromMinutes(3));

        (await _org.UploadAsync(session, 100, Lines(1, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");
        (await _org.UploadAsync(session, 100, Lines(1, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "session-closed");

        var view = await _org.SessionAsync(session);
        view.GetProperty("complete").GetBoolean().ShouldBeFalse();
        view.GetProperty("lateRefusedCount").GetInt32().ShouldBe(1);
        view.GetProperty("batchCount").GetInt64().ShouldBe(1);
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        var late = (await query.Events.FetchStreamAsync(session)).Where(e => e.EventTypeName == "late_batch_refused").ShouldHaveSingleItem();
        ((PamEventStore.Sessions.LateBatchRefused)late.Data).RefusedEventCount.ShouldBe(2);
    }

    [Fact]
    public async Task eight_concurrent_identical_retries_all_succeed_and_store_one_batch()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));

        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _org.UploadAsync(session, 100, Lines(1, 4))));

        replies.ShouldAllBe(r => r.Status == HttpStatusCode.OK);
        replies.Count(r => !r.Body.GetProperty("duplicate").GetBoolean()).ShouldBe(1);
        (await StoredEventTypes(session)).Count(t => t == "batch_uploaded").ShouldBe(2);
    }

    [Fact]
    public async Task eight_concurrent_first_uploads_of_a_new_session_store_one_batch_and_one_activation()
    {
        var session = await _org.CreateSessionAsync();

        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _org.UploadAsync(session, 0, Lines(0, 4))));

        replies.ShouldAllBe(r => r.Status == HttpStatusCode.OK);
        (await StoredEventTypes(session)).ShouldBe(["session_started", "session_activated", "batch_uploaded"]);
    }

    [Fact]
    public async Task json_content_type_is_accepted_like_octet_stream()
    {
        var session = await _org.CreateSessionAsync();

        var reply = await _org.UploadRawAsync(session, "startOffset=0", System.Text.Encoding.UTF8.GetBytes(Lines(0, 1)), contentType: "application/json");

        reply.ShouldBeAccepted(sequence: 0);
    }

    [Fact]
    public async Task the_session_aggregate_stays_the_same_size_however_many_batches_it_has()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        var sizeAfterOne = await SnapshotSize(session);

        for (var i = 1; i < 60; i++) await _org.UploadAsync(session, i * 100, Lines(i, 1));

        (await SnapshotSize(session)).ShouldBeLessThanOrEqualTo(sizeAfterOne + 16);
    }

    private async Task<int> SnapshotSize(Guid sessionId)
    {
        await using var session = store.Host.DocumentStore().QuerySession(_org.Id);
        var json = await session.Json.FindByIdAsync<PamSession>(sessionId);
        return json!.Length;
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Marten;
using PamEventStore.Crypto;
using PamEventStore.Storage;
using PamEventStore.Viewing;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Viewing;

[Collection(PamStoreCollection.Name)]
public sealed class when_reading_log_pages(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private static string Text(JsonElement sessionEvent) => Encoding.UTF8.GetString(Convert.FromBase64String(sessionEvent.GetProperty("data").GetString()!));

    private async Task<Guid> SessionWithBatches(int batches)
    {
        var session = await _org.CreateSessionAsync();
        for (var i = 0; i < batches; i++) (await _org.UploadAsync(session, i * 100, Lines(i * 2, 2))).Status.ShouldBe(HttpStatusCode.OK);
        return session;
    }

    [Fact]
    public async Task a_page_holds_twenty_batches_by_default_and_says_there_is_more()
    {
        var session = await SessionWithBatches(25);

        var page = (await _org.LogsAsync(session)).Body;

        page.GetProperty("batchCount").GetInt32().ShouldBe(20);
        page.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        page.GetProperty("logs").GetArrayLength().ShouldBe(40);
        page.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("sequence").GetInt64()).ShouldBe(Enumerable.Range(0, 20).Select(i => (long)i));
    }

    [Fact]
    public async Task the_events_come_back_decrypted_in_order_as_the_gateway_recorded_them()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Batch(Terminal(0, "whoami\r\n", "input"), Terminal(1, "root\r\n")));

        var logs = (await _org.LogsAsync(session)).Body.GetProperty("logs");

        logs.GetArrayLength().ShouldBe(2);
        logs[0].GetProperty("eventType").GetString().ShouldBe("input");
        Text(logs[0]).ShouldBe("whoami\r\n");
        logs[1].GetProperty("timestamp").GetString().ShouldBe("2026-12-04T10:00:01.123456789+02:00");
        logs[1].GetProperty("elapsedTime").GetDouble().ShouldBe(1.25);
        logs[1].GetProperty("channelType").GetString().ShouldBe("terminal");
    }

    [Fact]
    public async Task following_batch_count_walks_the_whole_session_exactly_once()
    {
        var session = await SessionWithBatches(13);
        var seen = new List<string>();
        long cursor = 0;
        bool hasMore;
        do
        {
            var page = (await _org.LogsAsync(session, $"offset={cursor}&limit=5")).Body;
            seen.AddRange(page.GetProperty("logs").EnumerateArray().Select(Text));
            cursor += page.GetProperty("batchCount").GetInt32();
            hasMore = page.GetProperty("hasMore").GetBoolean();
        }
        while (hasMore);

        cursor.ShouldBe(13);
        seen.ShouldBe(Enumerable.Range(0, 26).Select(i => $"line {i}\r\n"));
    }

    [Fact]
    public async Task a_live_session_shows_new_batches_to_a_poller_at_its_cursor()
    {
        var session = await SessionWithBatches(2);
        var first = (await _org.LogsAsync(session, "offset=0&limit=100")).Body;
        first.GetProperty("batchCount").GetInt32().ShouldBe(2);

        await _org.UploadAsync(session, 200, Lines(4, 1));

        var next = (await _org.LogsAsync(session, "offset=2&limit=100")).Body;
        next.GetProperty("batchCount").GetInt32().ShouldBe(1);
        Text(next.GetProperty("logs")[0]).ShouldBe("line 4\r\n");
        next.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task a_page_past_the_end_is_empty()
    {
        var session = await SessionWithBatches(3);

        var page = (await _org.LogsAsync(session, "offset=3")).Body;

        page.GetProperty("logs").GetArrayLength().ShouldBe(0);
        page.GetProperty("batchCount").GetInt32().ShouldBe(0);
        page.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task a_page_deep_in_a_ten_thousand_batch_session_holds_the_right_batches()
    {
        var session = await _org.CreateSessionAsync();
        await StoredEvents.SeedBatchesAsync(store, _org, session, 10_000);

        var start = (await _org.LogsAsync(session, "offset=0&limit=100")).Body;
        var deep = (await _org.LogsAsync(session, "offset=9900&limit=100")).Body;

        Text(start.GetProperty("logs")[0]).ShouldBe("line 0\r\n");
        start.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        deep.GetProperty("batchCount").GetInt32().ShouldBe(100);
        deep.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
        deep.GetProperty("logs").EnumerateArray().Select(Text).ShouldBe(Enumerable.Range(9900, 100).Select(i => $"line {i}\r\n"));
        deep.GetProperty("batches").EnumerateArray().ShouldAllBe(b => b.GetProperty("status").GetString() == "ok");
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt64().ShouldBe(10_000);
    }

    [Theory]
    [InlineData("offset=-1")]
    [InlineData("offset=abc")]
    [InlineData("offset=1.5")]
    [InlineData("limit=0")]
    [InlineData("limit=101")]
    [InlineData("limit=-5")]
    [InlineData("limit=ten")]
    [InlineData("offset=1&offset=2")]
    [InlineData("offset=0%00")]
    [InlineData("limit=5%00")]
    public async Task a_bad_offset_or_limit_is_refused(string query)
    {
        var session = await SessionWithBatches(1);

        (await _org.LogsAsync(session, query)).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task a_limit_of_one_hundred_is_allowed()
    {
        var session = await SessionWithBatches(3);

        (await _org.LogsAsync(session, "limit=100")).Body.GetProperty("batchCount").GetInt32().ShouldBe(3);
    }

    [Fact]
    public async Task each_batch_entry_tells_where_it_came_from()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 180);

        var entry = (await _org.LogsAsync(session)).Body.GetProperty("batches")[0];

        entry.GetProperty("startOffset").GetInt64().ShouldBe(0);
        entry.GetProperty("endOffset").GetInt64().ShouldBe(180);
        entry.GetProperty("eventCount").GetInt32().ShouldBe(2);
        entry.GetProperty("fingerprint").GetString()!.Length.ShouldBe(64);
        entry.GetProperty("status").GetString().ShouldBe("ok");
    }

    [Fact]
    public async Task an_altered_ciphertext_is_reported_in_its_entry_and_the_rest_of_the_page_still_reads()
    {
        var session = await SessionWithBatches(3);
        var changed = await StoredEvents.ExecuteAsync(store,
            $"update pam.mt_events set bdata = set_byte(bdata, length(bdata) - 1, (get_byte(bdata, length(bdata) - 1) + 1) % 256) where {StoredEvents.BatchRow}",
            StoredEvents.BatchRowParameters(_org, session, 1));
        changed.ShouldBe(1);

        var reply = await _org.LogsAsync(session);

        reply.Status.ShouldBe(HttpStatusCode.OK);
        var statuses = reply.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ToList();
        statuses.ShouldBe(["ok", "undecryptable", "ok"]);
        reply.Body.GetProperty("logs").EnumerateArray().Select(Text).ShouldBe(["line 0\r\n", "line 1\r\n", "line 4\r\n", "line 5\r\n"]);
        reply.Body.GetProperty("batchCount").GetInt32().ShouldBe(3);
    }

    [Theory]
    [InlineData("set_byte(bdata, 1, 128)", 1)]
    [InlineData("set_byte(bdata, 4, 255)", 1)]
    [InlineData("decode('0100000002', 'hex') || convert_to('{}', 'UTF8') || decode('00ff', 'hex')", 0)]
    [InlineData("decode('0100000002', 'hex') || convert_to('{}', 'UTF8') || decode('00ff', 'hex')", 1)]
    [InlineData("decode('0100000004', 'hex') || convert_to('null', 'UTF8')", 1)]
    [InlineData("decode('01', 'hex')", 1)]
    public async Task a_row_whose_header_is_altered_reads_as_missing_and_the_rest_of_the_page_still_reads(string altered, int batch)
    {
        var session = await SessionWithBatches(3);
        (await StoredEvents.ExecuteAsync(store, $"update pam.mt_events set bdata = {altered} where {StoredEvents.BatchRow}",
            StoredEvents.BatchRowParameters(_org, session, batch))).ShouldBe(1);

        var reply = await _org.LogsAsync(session);

        reply.Status.ShouldBe(HttpStatusCode.OK);
        reply.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString())
            .ShouldBe(Enumerable.Range(0, 3).Select(i => i == batch ? "missing" : "ok"));
        reply.Body.GetProperty("logs").EnumerateArray().Select(Text)
            .ShouldBe(Enumerable.Range(0, 3).Where(i => i != batch).SelectMany(i => new[] { $"line {2 * i}\r\n", $"line {2 * i + 1}\r\n" }));
    }

    [Fact]
    public async Task a_row_copied_over_another_batch_leaves_that_batch_missing()
    {
        var session = await SessionWithBatches(3);
        await StoredEvents.ExecuteAsync(store,
            $"update pam.mt_events set bdata = (select bdata from pam.mt_events where {StoredEvents.BatchRow.Replace("@batchId", "@sourceId")}) where {StoredEvents.BatchRow}",
            [.. StoredEvents.BatchRowParameters(_org, session, 2), ("sourceId", PamEventStore.Sessions.RecordedBatch.IdFor(session, 0))]);

        var batches = (await _org.LogsAsync(session)).Body.GetProperty("batches").EnumerateArray().ToList();

        batches.Select(b => b.GetProperty("status").GetString()).ShouldBe(["ok", "ok", "missing"]);
        batches[2].GetProperty("firstEventAt").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.Null);
    }

    [Fact]
    public async Task content_re_sealed_by_someone_holding_the_key_does_not_match_its_recorded_hash()
    {
        var session = await SessionWithBatches(1);
        var sealing = await store.Host.Services.GetRequiredService<RecordingCipher>().SealingAsync(_org.Id, CancellationToken.None);
        var forged = RecordingCipher.Seal(sealing, new BatchPlace(_org.Id, session, 0, 0), PackedContent.Pack(Encoding.UTF8.GetBytes(Lines(0, 2).Replace("T10:00:00", "T11:00:00"))));
        var stored = await Stored(session, 0);
        var row = new EncryptedRecordingSerializer().Serialize(typeof(PamEventStore.Sessions.BatchUploaded),
            stored.SealedAs(forged));
        await StoredEvents.ExecuteAsync(store,
            $"update pam.mt_events set bdata = @row where {StoredEvents.BatchRow}",
            [.. StoredEvents.BatchRowParameters(_org, session, 0), ("row", (object)row)]);

        var page = (await _org.LogsAsync(session)).Body;

        page.GetProperty("batches")[0].GetProperty("status").GetString().ShouldBe("hash-mismatch");
        page.GetProperty("logs").GetArrayLength().ShouldBe(0);
    }

    [Fact]
    public async Task a_session_with_only_a_legacy_upload_returns_it_whole_on_the_first_page()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        var events = Batch(Enumerable.Range(0, 150).Select(i => Query(i, $"select {i}")).ToArray());
        (await _org.UploadLegacyAsync(session, events)).Status.ShouldBe(HttpStatusCode.OK);

        var first = (await _org.LogsAsync(session)).Body;
        var second = (await _org.LogsAsync(session, "offset=1")).Body;

        first.GetProperty("logs").GetArrayLength().ShouldBe(150);
        first.GetProperty("logs")[149].GetProperty("input").GetString().ShouldBe("select 149");
        first.GetProperty("batchCount").GetInt32().ShouldBe(0);
        first.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
        var entry = first.GetProperty("batches").EnumerateArray().ShouldHaveSingleItem();
        entry.GetProperty("legacy").GetBoolean().ShouldBeTrue();
        entry.GetProperty("status").GetString().ShouldBe("ok");
        entry.GetProperty("eventCount").GetInt32().ShouldBe(150);
        second.GetProperty("logs").GetArrayLength().ShouldBe(0);
    }

    [Fact]
    public async Task an_altered_legacy_upload_is_reported_in_its_entry_not_read_as_no_recording()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        (await _org.UploadLegacyAsync(session, Queries(3))).Status.ShouldBe(HttpStatusCode.OK);
        var changed = await StoredEvents.ExecuteAsync(store,
            "update pam.mt_events set bdata = set_byte(bdata, length(bdata) - 1, (get_byte(bdata, length(bdata) - 1) + 1) % 256) " +
            "where tenant_id = @org and stream_id = @session and type = 'legacy_logs_uploaded'",
            ("org", _org.Id), ("session", session));
        changed.ShouldBe(1);

        var page = (await _org.LogsAsync(session)).Body;

        page.GetProperty("logs").GetArrayLength().ShouldBe(0);
        var entry = page.GetProperty("batches").EnumerateArray().ShouldHaveSingleItem();
        entry.GetProperty("legacy").GetBoolean().ShouldBeTrue();
        entry.GetProperty("status").GetString().ShouldBe("undecryptable");
        entry.GetProperty("eventCount").GetInt32().ShouldBe(3);
    }

    [Fact]
    public async Task a_legacy_upload_after_batches_reads_as_its_own_entry_after_theirs()
    {
        var session = await SessionWithBatches(2);
        (await _org.UploadLegacyAsync(session, Lines(0, 4))).Status.ShouldBe(HttpStatusCode.OK);

        var batches = (await _org.LogsAsync(session)).Body;
        var legacy = (await _org.LogsAsync(session, "offset=2")).Body;

        batches.GetProperty("batches").EnumerateArray().Count(b => b.TryGetProperty("legacy", out _)).ShouldBe(0);
        batches.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        var entry = legacy.GetProperty("batches").EnumerateArray().ShouldHaveSingleItem();
        entry.GetProperty("sequence").GetInt64().ShouldBe(2);
        entry.GetProperty("legacy").GetBoolean().ShouldBeTrue();
        legacy.GetProperty("batchCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task a_session_without_recordings_has_an_empty_page()
    {
        var session = await _org.CreateSessionAsync();

        var page = (await _org.LogsAsync(session)).Body;

        page.GetProperty("logs").GetArrayLength().ShouldBe(0);
        page.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task an_unknown_session_is_not_found()
    {
        (await _org.LogsAsync(Guid.NewGuid())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task a_page_of_large_batches_holds_fewer_batches_and_the_cursor_still_walks_them_all()
    {
        // The test host allows 256 KiB per page: six batches of ~60 KiB do not fit in one.
        var session = await _org.CreateSessionAsync();
        var big = new string('z', 45_000);
        for (var i = 0; i < 6; i++) (await _org.UploadAsync(session, i * 100_000, Batch(Terminal(i, $"{i}{big}")))).Status.ShouldBe(HttpStatusCode.OK);

        var first = (await _org.LogsAsync(session, "offset=0&limit=100")).Body;
        first.GetProperty("batchCount").GetInt32().ShouldBeInRange(1, 5);
        first.GetProperty("hasMore").GetBoolean().ShouldBeTrue();

        var seen = new List<string>();
        long cursor = 0;
        JsonElement page;
        do
        {
            page = (await _org.LogsAsync(session, $"offset={cursor}&limit=100")).Body;
            seen.AddRange(page.GetProperty("logs").EnumerateArray().Select(e => Text(e)[..1]));
            cursor += page.GetProperty("batchCount").GetInt32();
        }
        while (page.GetProperty("hasMore").GetBoolean());

        seen.ShouldBe(["0", "1", "2", "3", "4", "5"]);
    }

    [Fact]
    public async Task a_retired_data_key_that_no_longer_opens_costs_only_its_own_batches()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));
        await store.Host.Services.GetRequiredService<OrgDataKeys>().RotateAsync(_org.Id, CancellationToken.None);
        await _org.UploadAsync(session, 100, Lines(1, 1));

        // The first (retired) data key of the org's ring is damaged.
        var damaged = await StoredEvents.ExecuteAsync(store,
            "update pam.mt_doc_orgkeyring set data = jsonb_set(data, '{keys,0,wrapped}', to_jsonb(@garbage::text)) where tenant_id = @org",
            ("garbage", Convert.ToBase64String(new byte[60])), ("org", _org.Id));
        damaged.ShouldBe(1);
        var fresh = new OrgDataKeys(store.Host.DocumentStore(), store.Host.Services.GetRequiredService<MasterKeys>(), TimeProvider.System);
        var cipher = new RecordingCipher(fresh);

        (await StoredRecording.OpenAsync(cipher, (await cipher.FingerprintAsync(_org.Id, CancellationToken.None))!, new BatchPlace(_org.Id, session, 0, 0),
            await Stored(session, 0), CancellationToken.None)).Status.ShouldBe(BatchReadStatus.Undecryptable);
        (await StoredRecording.OpenAsync(cipher, (await cipher.FingerprintAsync(_org.Id, CancellationToken.None))!, new BatchPlace(_org.Id, session, 1, 100),
            await Stored(session, 1), CancellationToken.None)).Status.ShouldBe(BatchReadStatus.Ok);
        (await cipher.SealingAsync(_org.Id, CancellationToken.None)).Active.Id.ShouldBe(await KeyOf(session, 1));
    }

    private async Task<PamEventStore.Sessions.BatchUploaded> Stored(Guid session, long sequence)
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await query.Events.FetchStreamAsync(session)).Select(e => e.Data).OfType<PamEventStore.Sessions.BatchUploaded>().Single(b => b.Sequence == sequence);
    }

    private async Task<string> KeyOf(Guid session, long sequence) => (await Stored(session, sequence)).KeyId;
}

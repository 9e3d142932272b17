using System.Text;
using System.Text.Json;
using PamEventStore.Gateway.Client;
using PamEventStore.Gateway.Recording;
using PamEventStore.Gateway.Replay;
using PamEventStore.Gateway.Simulation;
using PamEventStore.Gateway.Watching;
using PamEventStore.Gateway.Workloads;
using PamEventStore.Recording;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.GatewayClient;

[Collection(PamStoreCollection.Name)]
public sealed class the_reference_gateway(PamStoreHost store)
{
    private readonly string _org = $"org-{Guid.NewGuid():N}";
    private readonly DevelopmentTokens _tokens = DevelopmentTokens.FromBase64(TestKeys.SigningKey);

    private PamApiClient Client() => new(store.Host.Server.CreateClient());

    [Fact]
    public async Task a_fleet_of_gateways_records_every_session_completely()
    {
        var fleet = new GatewayFleet(Client(), _tokens, new FleetOptions
        {
            OrgId = _org, Gateways = 2, SessionsPerGateway = 2, Interval = TimeSpan.FromMilliseconds(100), Duration = TimeSpan.FromMilliseconds(650),
        });

        var report = await fleet.RunAsync();

        report.Sessions.ShouldBe(4);
        report.FailureCount.ShouldBe(0);
        report.Uploads.ShouldBeGreaterThanOrEqualTo(4 * 5);
        report.Latency.Count.ShouldBe(report.Uploads);
    }

    [Theory]
    [InlineData("terminal", false)]
    [InlineData("sql", true)]
    public async Task what_a_gateway_uploads_reads_back_event_for_event(string kind, bool infisicalGateway)
    {
        var client = Client();
        Workload workload = kind == "sql" ? new SqlWorkload(7, DateTimeOffset.UtcNow) : new TerminalWorkload(7, DateTimeOffset.UtcNow);
        var sessionId = await client.CreateSessionAsync(_tokens.Platform(_org), new NewSession("p", workload.ResourceType, "r", "a", "u", "gw-1"));
        var uploader = new SessionUploader(client, sessionId, _tokens.Gateway(_org, "gw-1"), sendEndOffset: !infisicalGateway);
        var recorded = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            workload.Record(uploader.File, 4096, TimeSpan.FromSeconds(10));
            recorded.AddRange(JsonDocument.Parse(uploader.File.NextBatch()!.Body).RootElement.EnumerateArray().Select(e => e.GetRawText()));
            var flushed = (await uploader.FlushAsync(CancellationToken.None))!;
            flushed.Succeeded.ShouldBeTrue();
            uploader.LastHead.ShouldBe(flushed.Head.ShouldNotBeNull());
        }

        var live = uploader.LastHead!;

        var seal = (await uploader.EndAsync("cancellation", CancellationToken.None)).Seal.ShouldNotBeNull();

        var integrity = await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, seal);
        integrity.GetProperty("intact").GetBoolean().ShouldBeTrue(integrity.ToString());
        integrity.GetProperty("sealed").GetBoolean().ShouldBeTrue();
        uploader.LastHead.ShouldBe(seal);
        (await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, live)).GetProperty("intact").GetBoolean().ShouldBeTrue();
        var page = await client.GetLogsAsync(_tokens.Platform(_org), sessionId, 0, 100);
        page.GetProperty("logs").EnumerateArray().Select(e => e.GetRawText()).ShouldBe(recorded.Select(Canonical));
        var session = await client.GetSessionAsync(_tokens.Platform(_org), sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("complete").GetBoolean().ShouldBeTrue();
    }

    /// <summary>A session of project-1 and the gateway uploader that records it.</summary>
    private async Task<(PamApiClient Client, Guid SessionId, SessionUploader Uploader)> RecordingSessionAsync(bool sendEndOffset)
    {
        var client = Client();
        var sessionId = await client.CreateSessionAsync(_tokens.Platform(_org), new NewSession("project-1", "ssh", "r", "a", "u", "gw-1"));
        return (client, sessionId, new SessionUploader(client, sessionId, _tokens.Gateway(_org, "gw-1"), sendEndOffset));
    }

    /// <summary>Output event <paramref name="second"/> ("line N") into the gateway's recording file.</summary>
    private static void Record(SessionUploader uploader, int second) =>
        uploader.File.Append(Encoding.UTF8.GetBytes(
            $$"""{"timestamp":"2026-12-05T10:00:0{{second}}Z","eventType":"output","data":"{{Convert.ToBase64String(Encoding.UTF8.GetBytes($"line {second}"))}}","elapsedTime":{{second}}}"""));

    private static async Task RecordAndFlushAsync(SessionUploader uploader, int second)
    {
        Record(uploader, second);
        (await uploader.FlushAsync(CancellationToken.None))!.Succeeded.ShouldBeTrue();
    }

    [Fact]
    public async Task a_gateway_keeps_the_head_from_before_a_cut_and_says_the_chain_went_back()
    {
        var (client, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: false);
        for (var i = 0; i < 3; i++) await RecordAndFlushAsync(uploader, i);
        var beforeCut = uploader.LastHead.ShouldNotBeNull();
        beforeCut.Length.ShouldBe(5);

        // Batches 1 and 2 are cut from the store, thoroughly; the gateway goes on recording and ends.
        await StoredEvents.RewindAsync(store, new Org(store, _org), sessionId, 3);
        for (var i = 3; i < 6; i++) await RecordAndFlushAsync(uploader, i);
        var seal = (await uploader.EndAsync("cancellation", CancellationToken.None)).Seal.ShouldNotBeNull();

        uploader.ChainWentBack.ShouldBeTrue();
        uploader.LastHead.ShouldBe(beforeCut);
        (await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, seal)).GetProperty("intact").GetBoolean().ShouldBeTrue();
        var report = await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, uploader.LastHead);
        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        report.GetProperty("problems")[0].GetProperty("kind").GetString().ShouldBe("expected");
    }

    [Fact]
    public async Task a_final_flush_refused_for_good_does_not_keep_the_session_from_ending()
    {
        var (client, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: true);
        await RecordAndFlushAsync(uploader, 0);

        // The platform ends the session; the gateway's final flush comes after the grace window: refused
        // (and recorded as lost), and it would be on every try.
        await client.EndSessionAsync(_tokens.Platform(_org), sessionId);
        store.Clock.Advance(TimeSpan.FromMinutes(3));
        Record(uploader, 1);

        var end = await uploader.EndAsync("cancellation", CancellationToken.None);

        end.Ended.ShouldBeTrue();
        end.Refused.ShouldNotBeNull().ProblemType.ShouldBe("urn:pam-event-store:problem:session-closed");
        end.Seal.ShouldNotBeNull();
        var session = await client.GetSessionAsync(_tokens.Platform(_org), sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("lateRefusedCount").GetInt64().ShouldBe(1);
        uploader.ChainWentBack.ShouldBeFalse();
    }

    [Fact]
    public async Task a_cut_of_the_newest_batch_is_flagged_though_the_next_upload_answers_a_longer_chain()
    {
        var (client, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: true);
        for (var i = 0; i < 3; i++) await RecordAndFlushAsync(uploader, i);
        var beforeCut = uploader.LastHead.ShouldNotBeNull();

        // The newest batch is cut from the store, thoroughly. The next upload starts where the cut batch
        // ended, so the service records a gap and the batch: two events on four, a chain of six after five.
        await StoredEvents.RewindAsync(store, new Org(store, _org), sessionId, 4);
        Record(uploader, 3);
        var next = (await uploader.FlushAsync(CancellationToken.None)).ShouldNotBeNull();
        next.Head.ShouldNotBeNull().Length.ShouldBeGreaterThan(beforeCut.Length);

        uploader.ChainWentBack.ShouldBeTrue();
        uploader.LastHead.ShouldBe(beforeCut);
        var report = await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, uploader.LastHead);
        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task an_end_answering_a_chain_of_the_kept_length_with_another_link_is_flagged()
    {
        var (_, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: false);
        for (var i = 0; i < 3; i++) await RecordAndFlushAsync(uploader, i);
        var beforeCut = uploader.LastHead.ShouldNotBeNull();

        // One event cut; the end appends one: the same length as the head kept, with another link at it.
        await StoredEvents.RewindAsync(store, new Org(store, _org), sessionId, 4);
        var seal = (await uploader.EndAsync("cancellation", CancellationToken.None)).Seal.ShouldNotBeNull();

        seal.Length.ShouldBe(beforeCut.Length);
        uploader.ChainWentBack.ShouldBeTrue();
        uploader.LastHead.ShouldBe(beforeCut);
    }

    [Fact]
    public async Task a_cut_just_before_the_gateway_ends_the_session_is_flagged()
    {
        var (_, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: false);
        for (var i = 0; i < 3; i++) await RecordAndFlushAsync(uploader, i);

        var beforeCut = uploader.LastHead.ShouldNotBeNull();
        await StoredEvents.RewindAsync(store, new Org(store, _org), sessionId, 3);
        await uploader.EndAsync("cancellation", CancellationToken.None);

        uploader.ChainWentBack.ShouldBeTrue();
        uploader.LastHead.ShouldBe(beforeCut);
    }

    [Fact]
    public async Task a_final_flush_after_the_platform_ended_the_session_is_no_cut()
    {
        var (client, sessionId, uploader) = await RecordingSessionAsync(sendEndOffset: true);
        await RecordAndFlushAsync(uploader, 0);

        // The platform ends it first; the gateway's final flush is stored after the end, then the gateway ends it
        // too and is answered the seal from before its flush; and once more.
        await client.EndSessionAsync(_tokens.Platform(_org), sessionId);
        Record(uploader, 1);
        var seal = (await uploader.EndAsync("cancellation", CancellationToken.None)).Seal;
        await uploader.EndAsync("cancellation", CancellationToken.None);

        uploader.ChainWentBack.ShouldBeFalse();
        uploader.LastHead.ShouldNotBeNull().Length.ShouldBeGreaterThan(seal.ShouldNotBeNull().Length);
        (await client.GetIntegrityAsync(_tokens.Platform(_org), sessionId, uploader.LastHead)).GetProperty("intact").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public void the_seal_is_read_from_the_session_s_seal_not_its_current_head()
    {
        // Ended, then a final flush chained on after the end: the head has moved, the seal has not.
        var session = JsonDocument.Parse("""{"chainLength":6,"chainHead":"bmV3","seal":{"length":5,"head":"c2VhbA=="}}""").RootElement;

        KeptHead.SealOf(session).ShouldBe(new KeptHead(5, "c2VhbA=="));
        KeptHead.SealOf(JsonDocument.Parse("""{"chainLength":3,"chainHead":"bmV3","seal":null}""").RootElement).ShouldBeNull();
    }

    [Fact]
    public void offsets_advance_like_the_gateways_encrypted_recording_file()
    {
        var file = new RecordingFile();
        file.Append("{\"a\":1}"u8.ToArray());
        file.Append("{\"b\":22}"u8.ToArray());

        var batch = file.NextBatch()!;
        batch.StartOffset.ShouldBe(0);
        batch.EndOffset.ShouldBe(7 + 32 + 8 + 32);
        Encoding.UTF8.GetString(batch.Body).ShouldBe("[{\"a\":1},{\"b\":22}]");

        // Not acknowledged: the next batch starts at the same offset and carries more.
        file.Append("{\"c\":3}"u8.ToArray());
        file.NextBatch()!.StartOffset.ShouldBe(0);
        file.Acknowledge(batch);
        file.NextBatch()!.StartOffset.ShouldBe(batch.EndOffset);
        file.NextBatch()!.EventCount.ShouldBe(1);
    }

    [Fact]
    public void a_backlog_larger_than_the_service_takes_goes_in_several_batches_with_no_byte_lost()
    {
        var file = new RecordingFile();
        for (var i = 0; i < 10; i++) file.Append(Encoding.UTF8.GetBytes($"{{\"n\":\"{new string('x', 1000)}{i}\"}}"));

        var offsets = new List<(long Start, long End)>();
        var events = 0;
        while (file.NextBatch(maxBodyBytes: 3500) is { } batch)
        {
            batch.Body.Length.ShouldBeLessThanOrEqualTo(3500);
            JsonDocument.Parse(batch.Body).RootElement.GetArrayLength().ShouldBe(batch.EventCount);
            offsets.Add((batch.StartOffset, batch.EndOffset));
            events += batch.EventCount;
            file.Acknowledge(batch);
        }

        events.ShouldBe(10);
        offsets.Count.ShouldBeGreaterThan(1);
        offsets.Zip(offsets.Skip(1)).ShouldAllBe(pair => pair.First.End == pair.Second.Start);
        offsets[^1].End.ShouldBe(file.WrittenOffset);
    }

    [Theory]
    [InlineData(0, "2026-12-04T10:00:00Z")]
    [InlineData(1_230_000, "2026-12-04T10:00:00.123Z")]
    [InlineData(1_234_567, "2026-12-04T10:00:00.1234567Z")]
    public void timestamps_are_written_as_go_marshals_them(long ticks, string expected)
    {
        GoJson.Timestamp(new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.Zero).AddTicks(ticks)).ShouldBe(expected);
    }

    [Theory]
    [InlineData("select 'a'+1 <x> & `y`", "\"select 'a'+1 \\u003cx\\u003e \\u0026 `y`\"")]
    [InlineData("é 注文 🚀", "\"é 注文 🚀\"")]
    [InlineData("a\"b\\c\n\r\t\b\f\u0001\u001f\u007f", "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\u007f\"")]
    [InlineData("\u2028\u2029", "\"\\u2028\\u2029\"")]
    public void strings_are_escaped_as_go_escapes_them(string value, string expected)
    {
        GoJson.String(value).ShouldBe(expected);

        var log = GoJson.CommandLog(new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.Zero), value, "ok");
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes("[" + Encoding.UTF8.GetString(log) + "]"), out var parsed, out var error).ShouldBeTrue(error?.Message);
        parsed!.EventCount.ShouldBe(1);
        JsonDocument.Parse(log).RootElement.GetProperty("input").GetString().ShouldBe(value);
    }

    [Fact]
    public void half_a_surrogate_pair_is_written_as_the_replacement_character_as_go_writes_invalid_utf8()
    {
        // Built at run time: an attribute's string cannot carry half a pair.
        GoJson.String("half " + (char)0xD800 + " pair " + (char)0xDC00).ShouldBe("\"half \\ufffd pair \\ufffd\"");
    }

    [Fact]
    public void an_asciicast_becomes_terminal_events_the_service_accepts()
    {
        var cast = Asciicast.Read(new StringReader("""
            {"version": 2, "width": 80, "height": 24}
            [0.5, "o", "$ "]
            [1.25, "i", "l"]
            [2.0, "r", "100x30"]
            [2.5, "m", "chapter 1"]
            """));

        var events = cast.Events.Select(e => LiveReplay.ToSessionEvent(e, DateTimeOffset.UnixEpoch)).OfType<byte[]>().ToList();

        events.Count.ShouldBe(3);
        var batch = Encoding.UTF8.GetBytes("[" + string.Join(",", events.Select(Encoding.UTF8.GetString)) + "]");
        RecordingParser.TryParseBatch(batch, out var parsed, out var error).ShouldBeTrue(error?.Message);
        parsed!.EventCount.ShouldBe(3);
        JsonDocument.Parse(events[1]).RootElement.GetProperty("eventType").GetString().ShouldBe("input");
        JsonDocument.Parse(events[2]).RootElement.GetProperty("eventType").GetString().ShouldBe("resize");
    }

    [Fact]
    public void an_asciicast_v3_as_asciinema_rec_writes_it_gives_times_since_the_start()
    {
        var cast = Asciicast.Read(new StringReader("""
            {"version": 3, "term": {"cols": 120, "rows": 40, "type": "xterm-256color"}, "timestamp": 1764900000}
            # a comment line
            [0.5, "o", "$ "]
            [0.75, "i", "l"]
            [0.25, "o", "ls\r\n"]
            [1.0, "x", "0"]
            """));

        (cast.Width, cast.Height).ShouldBe((120, 40));
        cast.Events.Select(e => e.Time).ShouldBe([0.5, 1.25, 1.5, 2.5]);
        cast.Events.Select(e => e.Code).ShouldBe(["o", "i", "o", "x"]);
        cast.Events.Select(e => LiveReplay.ToSessionEvent(e, DateTimeOffset.UnixEpoch)).OfType<byte[]>().Count().ShouldBe(3);
    }

    public static TheoryData<string, string> MalformedCasts => new()
    {
        { "cut short", "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"$ \"]\n[1.5, \"o\", \"fi" },
        { "a version not read", "{\"version\": 1, \"width\": 80, \"height\": 24}\n" },
        { "a header that is no object", "[2]\n" },
        { "a time as a string", "{\"version\": 2}\n[\"0.5\", \"o\", \"$ \"]\n" },
        { "half a surrogate pair", "{\"version\": 2}\n[0.5, \"o\", \"\\udc80\"]\n" },
        { "null data", "{\"version\": 2}\n[0.5, \"o\", null]\n" },
        { "a negative time", "{\"version\": 3}\n[-0.5, \"o\", \"a\"]\n" },
        { "times going back", "{\"version\": 2}\n[1.5, \"o\", \"a\"]\n[0.5, \"o\", \"b\"]\n" },
        { "an empty file", "" },
    };

    [Theory]
    [MemberData(nameof(MalformedCasts))]
    public void a_malformed_cast_is_refused_as_a_format_error_saying_where(string what, string text)
    {
        var error = Should.Throw<FormatException>(() => Asciicast.Read(new StringReader(text)), what);

        error.Message.ShouldNotBeNullOrWhiteSpace();
        if (text.Contains('\n') && !text.StartsWith("[2]") && !text.Contains("\"version\": 1")) error.Message.ShouldStartWith("Line ");
    }

    [Fact]
    public async Task a_replay_or_a_fleet_with_no_interval_or_speed_is_refused_before_it_starts()
    {
        var cast = Asciicast.Read(new StringReader("{\"version\": 2}\n[0.0, \"o\", \"a\"]"));
        var replay = new LiveReplay(Client(), _tokens, _org, "gw-1");

        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => replay.RunAsync(cast, 1, TimeSpan.Zero, _ => { }, CancellationToken.None));
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => replay.RunAsync(cast, 0, TimeSpan.FromSeconds(1), _ => { }, CancellationToken.None));
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => new GatewayFleet(Client(), _tokens, new FleetOptions { OrgId = _org, Interval = TimeSpan.Zero }).RunAsync());
    }

    [Fact]
    public async Task watching_a_session_shows_its_output_as_it_is_stored_then_its_end()
    {
        var org = new Org(store, _org);
        var session = await org.CreateSessionAsync();
        (await org.UploadAsync(session, 0, Recordings.Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        var output = new StringWriter();
        var progress = new System.Collections.Concurrent.ConcurrentQueue<string>();

        var watching = new SessionWatch(Client(), _tokens.Platform(_org), session).RunAsync(from: 0, output, progress.Enqueue, CancellationToken.None);
        (await org.UploadAsync(session, 100, Recordings.Lines(2, 1), endOffset: 200)).ShouldBeAccepted(1);
        var seal = (await org.EndAsync(session)).Body.GetProperty("session").GetProperty("seal");

        // Once the watcher has shown the end, the grace window passes and the service closes the stream.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!progress.Any(p => p.StartsWith("[session ended", StringComparison.Ordinal)) && DateTime.UtcNow < deadline) await Task.Delay(50);
        store.Clock.Advance(TimeSpan.FromMinutes(3));

        var ended = (await watching.WaitAsync(TimeSpan.FromSeconds(10))).ShouldNotBeNull();
        ended.GetProperty("status").GetString().ShouldBe("ended");
        output.ToString().ShouldBe("line 0\r\nline 1\r\nline 2\r\n");
        progress.ShouldContain($"[session ended, sealed at event {seal.GetProperty("length")}: {seal.GetProperty("head").GetString()}]");
    }

    [Fact]
    public void a_watcher_reads_queries_with_their_results_requests_with_their_statuses_and_terminal_output_as_seen()
    {
        string Render(string json) => SessionWatch.Render(JsonDocument.Parse(json).RootElement);

        Render(Recordings.Query(0, "select 1", "1 row")).ShouldBe("> select 1\n1 row\n");
        Render(Recordings.HttpRequest(0, "r1", "/api/v1/pods")).ShouldBe("-> GET /api/v1/pods\n");
        Render(Recordings.HttpResponse(1, "r1", "200 OK")).ShouldBe("<- 200 OK\n");
        Render(Recordings.Terminal(0, "$ ls\r\n")).ShouldBe("$ ls\r\n");
        Render(Recordings.Terminal(0, "l", eventType: "input")).ShouldBe("", "the terminal echoes what is typed: it shows in the output");
    }

    [Fact]
    public async Task a_cast_replays_live_and_reads_back_in_order()
    {
        var cast = Asciicast.Read(new StringReader(string.Join('\n',
            ["""{"version": 2, "width": 80, "height": 24}""", .. Enumerable.Range(0, 20).Select(i => $"[{i * 0.01:0.00}, \"o\", \"line {i}\\r\\n\"]")])));
        var client = Client();

        var progress = new List<string>();
        var (sessionId, complete) = await new LiveReplay(client, _tokens, _org, "gw-1").RunAsync(cast, speed: 1, TimeSpan.FromMilliseconds(50), progress.Add, CancellationToken.None);
        complete.ShouldBeTrue();

        var seal = KeptHead.SealOf(await client.GetSessionAsync(_tokens.Platform(_org), sessionId)).ShouldNotBeNull();
        progress[^1].ShouldBe($"session {sessionId}: ended, sealed at event {seal.Length}: {seal.Head}");

        var logs = (await client.GetLogsAsync(_tokens.Platform(_org), sessionId, 0, 100)).GetProperty("logs");
        logs.EnumerateArray().Select(e => Encoding.UTF8.GetString(e.GetProperty("data").GetBytesFromBase64())).ShouldBe(Enumerable.Range(0, 20).Select(i => $"line {i}\r\n"));
    }

    private static string Canonical(string goJson)
    {
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes("[" + goJson + "]"), out var batch, out _).ShouldBeTrue();
        var canonical = Encoding.UTF8.GetString(batch!.Canonical.Span);
        return canonical[1..^1];
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Transport;

/// <summary>The service as its own process on Kestrel, driven over loopback the way a gateway drives it.</summary>
[Collection(PamStoreCollection.Name)]
public sealed class over_a_real_socket(PamStoreHost store) : IAsyncLifetime
{
    private readonly string _org = $"org-{Guid.NewGuid():N}";
    private ServiceProcess _service = null!;

    private Dictionary<string, string> Settings => store.ProcessSettings;

    public async Task InitializeAsync() => _service = await store.ProcessAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<Reply> Send(HttpMethod method, string url, string token, HttpContent? content = null) => SendTo(_service, method, url, token, content);

    private string Gateway => GatewayToken("gw-1");

    private string GatewayToken(string gatewayId) => TestKeys.Token(TokenClaims.ForGateway(_org, gatewayId));

    private string User => TestKeys.Token(TokenClaims.ForUser(_org, "alice", PamScopes.Create, PamScopes.Read));

    /// <summary>A session of this test's org, created through the shared service or through <paramref name="on"/>.</summary>
    private async Task<Guid> CreateSession(ServiceProcess? on = null, string gatewayId = "gw-1")
    {
        var created = await SendTo(on ?? _service, HttpMethod.Post, Org.Sessions, User,
            JsonContent.Create(new { projectId = "p", resourceType = "ssh", resourceName = "web", accountName = "root", userId = "alice", gatewayId }));
        created.Status.ShouldBe(HttpStatusCode.Created, created.Body.ToString());
        return created.Body.GetProperty("session").GetProperty("id").GetGuid();
    }

    private static ByteArrayContent OctetStream(string body, bool chunked = false)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var content = chunked ? (ByteArrayContent)new ChunkedContent(bytes) : new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    [Fact]
    public async Task a_gateway_session_goes_from_creation_to_replay()
    {
        var session = await CreateSession();

        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 3)))).ShouldBeAccepted(0);
        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 3)))).ShouldBeDuplicate();
        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=300", Gateway, OctetStream(Lines(3, 3), chunked: true))).ShouldBeAccepted(1);
        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/end", Gateway)).Status.ShouldBe(HttpStatusCode.OK);

        var page = await Send(HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User);
        page.Body.GetProperty("logs").GetArrayLength().ShouldBe(6);
        page.Body.GetProperty("batchCount").GetInt32().ShouldBe(2);
    }

    [Fact]
    public async Task a_page_larger_than_one_write_streams_every_batch_whole_and_in_order()
    {
        // 40 batches of ~9 KB of recorded output: the page goes out in several writes, as it is read.
        var session = await CreateSession();
        const int batches = 40, linesPerBatch = 20;
        for (var b = 0; b < batches; b++)
        {
            var events = Batch(Enumerable.Range(b * linesPerBatch, linesPerBatch).Select(i => Terminal(i, $"line {i} {new string('x', 250)}\r\n")).ToArray());
            (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset={b * 100_000}", Gateway, OctetStream(events))).ShouldBeAccepted(b);
        }

        var page = await Send(HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User);

        // The page may stop short of 40 (it is bounded by bytes): whatever it holds is whole and in order.
        page.Status.ShouldBe(HttpStatusCode.OK);
        page.Response.Headers.TransferEncodingChunked.ShouldBe(true);
        var batchCount = page.Body.GetProperty("batchCount").GetInt32();
        page.Body.GetProperty("logs").GetRawText().Length.ShouldBeGreaterThan(2 * 64 * 1024);
        var lines = page.Body.GetProperty("logs").EnumerateArray()
            .Select(e => Encoding.UTF8.GetString(Convert.FromBase64String(e.GetProperty("data").GetString()!)).Split(' ')[1])
            .ToList();
        lines.ShouldBe(Enumerable.Range(0, batchCount * linesPerBatch).Select(i => i.ToString()));
        page.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("sequence").GetInt64()).ShouldBe(Enumerable.Range(0, batchCount).Select(i => (long)i));
        page.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldAllBe(status => status == "ok");
        page.Body.GetProperty("hasMore").GetBoolean().ShouldBe(batchCount < batches);
    }

    [Fact]
    public async Task a_reader_that_leaves_in_the_middle_of_a_page_does_not_disturb_the_next_one()
    {
        var session = await CreateSession();
        for (var b = 0; b < 30; b++)
        {
            var events = Batch(Enumerable.Range(b * 20, 20).Select(i => Terminal(i, $"line {i} {new string('x', 250)}\r\n")).ToArray());
            (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset={b * 100_000}", Gateway, OctetStream(events))).ShouldBeAccepted(b);
        }

        for (var attempt = 0; attempt < 5; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", User);
            using var response = await _service.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            (await body.ReadAsync(new byte[1024])).ShouldBeGreaterThan(0);
        }

        var page = await Send(HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User);
        page.Status.ShouldBe(HttpStatusCode.OK);
        page.Body.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldAllBe(status => status == "ok");
        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=3000000", Gateway, OctetStream(Lines(600, 2)))).ShouldBeAccepted(30);
    }

    [Fact]
    public async Task readers_that_do_not_take_their_pages_do_not_hold_the_database_from_gateways()
    {
        // A service whose pages are more than the sockets buffer (12 MB) and whose pool is small: more
        // stalled readers than connections must not leave an upload waiting for one.
        var settings = new Dictionary<string, string>(Settings)
        {
            ["LogPages:MaxBytes"] = (12 * 1024 * 1024).ToString(),
            ["Uploads:MaxBatchBytes"] = (512 * 1024).ToString(),
            ["ConnectionStrings:Marten"] = Settings["ConnectionStrings:Marten"] + ";Maximum Pool Size=4;Timeout=5",
        };
        await using var service = await ServiceProcess.StartAsync(settings);
        var session = await CreateSession();
        for (var b = 0; b < 60; b++)
        {
            var events = Batch(Enumerable.Range(b * 270, 270).Select(i => Terminal(i, $"line {i} {new string('x', 450)}\r\n")).ToArray());
            (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset={b * 100_000}", Gateway, OctetStream(events))).ShouldBeAccepted(b);
        }

        var stalled = new List<HttpResponseMessage>();
        try
        {
            for (var reader = 0; reader < 8; reader++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", User);
                stalled.Add(await service.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead));
            }

            var upload = await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=9000000", Gateway, OctetStream(Lines(6000, 2)));

            upload.ShouldBeAccepted(60);
        }
        finally
        {
            stalled.ForEach(response => response.Dispose());
        }
    }

    [Theory]
    [InlineData("logs?offset=0&limit=100")]
    [InlineData("live?from=0")]
    public async Task a_reader_that_stops_taking_its_page_is_cut_off_and_its_turn_goes_to_the_next(string stalledRead)
    {
        // A live tail writes its batches holding a page turn too: it is held to the same pace.
        // One turn, and a page larger than the server's socket buffer (4 MB at most here), so that a
        // reader that stops taking it keeps the turn until Kestrel finds its pace too slow: at 1 MiB/s,
        // seconds for what the sockets buffered; at Kestrel's own 240 B/s, hours.
        var settings = new Dictionary<string, string>(Settings)
        {
            ["LogPages:MaxBytes"] = (12 * 1024 * 1024).ToString(),
            ["LogPages:AtOnce"] = "1",
            ["LogPages:Wait"] = "00:00:15",
            ["LogPages:MinBytesPerSecond"] = (1024 * 1024).ToString(),
            ["LogPages:Grace"] = "00:00:02",
            ["Uploads:MaxBatchBytes"] = (512 * 1024).ToString(),
        };
        await using var service = await ServiceProcess.StartAsync(settings);
        var session = await CreateSession();
        for (var b = 0; b < 60; b++)
        {
            var events = Batch(Enumerable.Range(b * 270, 270).Select(i => Terminal(i, $"line {i} {new string('x', 450)}\r\n")).ToArray());
            (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset={b * 100_000}", Gateway, OctetStream(events))).ShouldBeAccepted(b);
        }

        // A small receive window that is never read past the first bytes: the page stalls on it.
        using var stalled = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = 16 * 1024 };
        await stalled.ConnectAsync(service.BaseAddress.Host, service.BaseAddress.Port);
        await stalled.SendAsync(Encoding.ASCII.GetBytes(
            $"GET {Org.Sessions}/{session}/{stalledRead} HTTP/1.1\r\nHost: {service.BaseAddress.Authority}\r\nAuthorization: Bearer {User}\r\n\r\n"));
        var first = new byte[256];
        Encoding.ASCII.GetString(first, 0, await stalled.ReceiveAsync(first)).ShouldStartWith("HTTP/1.1 200");
        var waited = Stopwatch.StartNew();

        // Until the sockets' buffers are full and the stalled read waits on its client holding the turn (a
        // tail takes it again for each few batches it reads, so the next page could slip in between).
        await Task.Delay(TimeSpan.FromSeconds(1));

        var next = await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User);

        next.Status.ShouldBe(HttpStatusCode.OK, next.Body.ToString());
        next.Body.GetProperty("batchCount").GetInt32().ShouldBe(60);
        waited.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task while_the_database_stalls_uploads_past_the_limit_are_turned_away_and_the_others_stored_once_it_answers()
    {
        const int limit = 128 * 1024;
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings) { ["Uploads:MaxBytesInFlight"] = limit.ToString() });
        var sessions = new List<Guid>();
        for (var i = 0; i < 24; i++) sessions.Add(await CreateSession());
        var events = Batch(Enumerable.Range(0, 40).Select(i => Terminal(i, $"line {i} {new string('x', 300)}\r\n")).ToArray());
        var letIn = limit / Encoding.UTF8.GetByteCount(events);

        // The database stalls: every session's stream is locked, as by a long transaction.
        await using var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await using var stall = await HoldStreamsAsync(connection, [.. sessions]);

        var uploads = sessions.Select(s => SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{s}/event-batches?startOffset=0", Gateway, OctetStream(events))).ToList();
        var waited = Stopwatch.StartNew();
        while (uploads.Count(u => u.IsCompleted) < sessions.Count - letIn && waited.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(20);
        await Task.Delay(200);

        var turnedAway = uploads.Where(u => u.IsCompleted).ToList();
        turnedAway.Count.ShouldBe(sessions.Count - letIn);
        foreach (var reply in turnedAway) (await reply).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy").Response.Headers.RetryAfter.ShouldNotBeNull();

        // The database answers again: the uploads let in are stored, then those turned away are, sent again.
        await stall.RollbackAsync();
        foreach (var upload in uploads.Except(turnedAway)) (await upload).ShouldBeAccepted(0);
        for (var i = 0; i < sessions.Count; i++)
        {
            if (turnedAway.Contains(uploads[i]))
                (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{sessions[i]}/event-batches?startOffset=0", Gateway, OctetStream(events))).ShouldBeAccepted(0);
            var stored = await Send(HttpMethod.Get, $"{Org.Sessions}/{sessions[i]}", User);
            stored.Body.GetProperty("session").GetProperty("batchCount").GetInt32().ShouldBe(1);
        }
    }

    [Fact]
    public async Task while_the_database_cannot_be_reached_requests_are_answered_503_and_what_is_sent_again_afterwards_is_stored()
    {
        await using var link = DatabaseLink.To(store.Database.ConnectionString);
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings) { ["ConnectionStrings:Marten"] = link.ConnectionString });
        var session = await CreateSession(on: service);
        (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 3)))).ShouldBeAccepted(0);

        link.Cut();

        var upload = await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=300", Gateway, OctetStream(Lines(3, 3)));
        upload.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable").Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(5));
        (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User)).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable");

        // Health answers from what it saw at most 2 s ago (the start-up probe saw the database).
        var health = await SendTo(service, HttpMethod.Get, "/health", User);
        for (var waited = Stopwatch.StartNew(); health.Status == HttpStatusCode.OK && waited.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(200))
            health = await SendTo(service, HttpMethod.Get, "/health", User);
        health.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable").Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(5));

        link.Mend();

        (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=300", Gateway, OctetStream(Lines(3, 3)))).ShouldBeAccepted(1);
        var page = await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User);
        page.Body.GetProperty("batchCount").GetInt32().ShouldBe(2);
        page.Body.GetProperty("logs").GetArrayLength().ShouldBe(6);
    }

    [Fact]
    public async Task while_the_database_stalls_uploads_waiting_for_a_writer_and_health_are_answered_503_in_time_and_what_is_sent_again_is_stored()
    {
        await using var link = DatabaseLink.To(store.Database.ConnectionString);
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings)
        {
            ["ConnectionStrings:Marten"] = link.ConnectionString + ";Command Timeout=10",
            ["Uploads:CommitWait"] = "00:00:01",
            ["Uploads:CommitWriters"] = "2",
        });
        // Sessions being recorded: each has had its first batch (the node knows its gateway and project).
        var sessions = new List<Guid>();
        for (var i = 0; i < 8; i++) sessions.Add(await CreateSession(on: service));
        foreach (var session in sessions)
            (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 3)))).ShouldBeAccepted(0);
        Task<Reply> Upload(Guid session) => SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=300", Gateway, OctetStream(Lines(3, 3)));

        // A frozen server: connections stay open, nothing comes back. The first two uploads each hold one
        // of the two writers until their command times out (10 s); the six after them wait for a writer.
        link.Stall();
        var first = Upload(sessions[0]);
        await Task.Delay(300);
        var second = Upload(sessions[1]);
        await Task.Delay(300);
        var stuck = new[] { first, second };
        var sent = Stopwatch.StartNew();
        var queued = await Task.WhenAll(sessions.Skip(2).Select(Upload));
        var answeredAfter = sent.Elapsed;

        // Answered when no writer took them within Uploads:CommitWait, not one command timeout after another.
        foreach (var reply in queued) reply.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable").Response.Headers.RetryAfter.ShouldNotBeNull();
        answeredAfter.ShouldBeLessThan(TimeSpan.FromSeconds(6));

        // Health gives the database 5 s, not a command timeout.
        var asked = Stopwatch.StartNew();
        var health = await SendTo(service, HttpMethod.Get, "/health", User);
        while (health.Status == HttpStatusCode.OK && asked.Elapsed < TimeSpan.FromSeconds(4)) health = await SendTo(service, HttpMethod.Get, "/health", User);
        health.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable");
        asked.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(9.5));

        // Those in a transaction are answered once their command times out (a lock not taken in time reads
        // as the session held elsewhere: the service cannot tell), before a gateway's own timeout.
        foreach (var reply in await Task.WhenAll(stuck))
        {
            reply.Status.ShouldBe(HttpStatusCode.ServiceUnavailable);
            (reply.IsProblem("database-unavailable") || reply.IsProblem("session-locked")).ShouldBeTrue(reply.Body.ToString());
        }

        sent.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(25));

        // Nothing that waited for a writer was stored: sent again, each is stored now, not answered as a
        // duplicate. The two in a transaction had their one round trip sent before the server froze: the server
        // may still have committed it once it answered again, and then the upload sent again is its duplicate.
        link.Resume();
        foreach (var session in sessions.Skip(2)) (await Upload(session)).ShouldBeAccepted(1);
        foreach (var session in sessions.Take(2))
        {
            var again = await Upload(session);
            if (!again.Body.GetProperty("duplicate").GetBoolean()) again.ShouldBeAccepted(1);
            (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{session}/logs?offset=0&limit=100", User)).Body.GetProperty("logs").GetArrayLength().ShouldBe(6);
        }

        (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{sessions[^1]}/logs?offset=0&limit=100", User)).Body.GetProperty("logs").GetArrayLength().ShouldBe(6);
    }

    [Fact]
    public async Task a_database_that_takes_no_writes_is_not_healthy()
    {
        // A database of its own, turned read-only once the service runs, as a primary turned read-only is.
        var database = $"readonly_{Guid.NewGuid():N}";
        await using var admin = new NpgsqlConnection(store.Database.ConnectionString);
        await admin.OpenAsync();
        await new NpgsqlCommand($"create database {database}", admin).ExecuteNonQueryAsync();
        try
        {
            var own = new NpgsqlConnectionStringBuilder(store.Database.ConnectionString) { Database = database }.ConnectionString;
            await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings) { ["ConnectionStrings:Marten"] = own });
            (await SendTo(service, HttpMethod.Get, "/health", User)).Status.ShouldBe(HttpStatusCode.OK);

            await new NpgsqlCommand($"alter database {database} set default_transaction_read_only = on; select pg_terminate_backend(pid) from pg_stat_activity where datname = '{database}'", admin).ExecuteNonQueryAsync();

            // Health answers from what it saw at most 2 s ago.
            var health = await SendTo(service, HttpMethod.Get, "/health", User);
            for (var waited = Stopwatch.StartNew(); health.Status == HttpStatusCode.OK && waited.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(200))
                health = await SendTo(service, HttpMethod.Get, "/health", User);
            health.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "database-unavailable");
        }
        finally
        {
            await new NpgsqlCommand($"drop database {database} with (force)", admin).ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task an_upload_to_a_session_held_longer_than_the_service_waits_is_answered_503_and_stored_when_sent_again()
    {
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings)
        {
            ["ConnectionStrings:Marten"] = Settings["ConnectionStrings:Marten"] + ";Command Timeout=1",
        });
        var session = await CreateSession();
        var upload = () => SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 3)));

        // Another node holds the session's stream, longer than the service waits for a lock (1 s here).
        await using (var connection = new NpgsqlConnection(store.Database.ConnectionString))
        await using (await HoldStreamsAsync(connection, session))
        {
            (await upload()).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "session-locked").Response.Headers.RetryAfter.ShouldNotBeNull();
        }

        (await upload()).ShouldBeAccepted(0);
    }

    [Fact]
    public async Task a_legacy_upload_whose_body_trickles_loses_its_turn_and_the_one_waiting_is_stored()
    {
        // One turn; a trickle of 1 KB/s, four times Kestrel's own minimum (240 B/s), an eighth of the turn's.
        // Its declared length would take longer at the turn's pace than the next upload waits: only the
        // pace measured as the body arrives can cut it off in time.
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings)
        {
            ["Uploads:LegacyLogsAtOnce"] = "1",
            ["Uploads:LegacyLogsWait"] = "00:00:20",
            ["Uploads:LegacyLogsMinBytesPerSecond"] = "8192",
            ["Uploads:LegacyLogsGrace"] = "00:00:03",
        });
        var trickled = await CreateSession(on: service);
        var waiting = await CreateSession(on: service);
        var warm = await CreateSession(on: service);
        (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{warm}/logs", Gateway, OctetStream($"{{\"logs\":{Lines(0, 1)}}}"))).Status.ShouldBe(HttpStatusCode.OK);

        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(service.BaseAddress.Host, service.BaseAddress.Port);
        var wire = socket.GetStream();
        var head = $"POST {Org.Sessions}/{trickled}/logs HTTP/1.1\r\nHost: {service.BaseAddress.Authority}\r\nAuthorization: Bearer {Gateway}\r\n" +
                   "Content-Type: application/octet-stream\r\nContent-Length: 400000\r\n\r\n{\"logs\":[";
        await wire.WriteAsync(Encoding.ASCII.GetBytes(head));
        using var stop = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            // JSON whitespace, until the server closes the connection.
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    await wire.WriteAsync(Encoding.ASCII.GetBytes(new string(' ', 100)), stop.Token);
                    await Task.Delay(100, stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException)
            {
                // Stopped, or the server closed the connection.
            }
        });

        await Task.Delay(500);
        var next = SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{waiting}/logs", Gateway, OctetStream($"{{\"logs\":{Lines(0, 3)}}}"));
        await Task.Delay(1000);
        next.IsCompleted.ShouldBeFalse("the next legacy upload waits while the trickling one holds the only turn");

        (await next).Status.ShouldBe(HttpStatusCode.OK);
        var answer = await ReadUntilClosedAsync(wire, TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await trickle;

        answer.ShouldStartWith("HTTP/1.1 408");
        answer.ShouldContain("application/problem+json");
        answer.ShouldContain("request-timeout");
        (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{trickled}", User)).Body.GetProperty("session").GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{waiting}", User)).Body.GetProperty("session").GetProperty("eventCount").GetInt64().ShouldBe(3);
    }

    [Fact]
    public async Task a_gateway_trickling_batch_bodies_holds_only_its_share_and_loses_it_to_the_pace()
    {
        // As a stolen gateway token would: uploads that declare large bodies and trickle them at 400 B/s
        // (above Kestrel's own minimum of 240 B/s), as many as the node's whole limit would take.
        const int declared = 32 * 1024, limit = 8 * declared, share = 2 * declared;
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings)
        {
            ["Uploads:MaxBytesInFlight"] = limit.ToString(),
            ["Uploads:MaxBytesInFlightPerGateway"] = share.ToString(),
            ["Uploads:BatchMinBytesPerSecond"] = "4096",
            ["Uploads:BatchGrace"] = "00:00:03",
        });
        var trickled = await CreateSession(on: service);
        var other = await CreateSession(on: service, gatewayId: "gw-2");
        (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{trickled}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 1)))).ShouldBeAccepted(0);

        using var stop = new CancellationTokenSource();
        var trickles = new List<(System.Net.Sockets.TcpClient Socket, Task<string> Answer)>();
        for (var i = 0; i < limit / declared; i++)
        {
            var socket = new System.Net.Sockets.TcpClient();
            await socket.ConnectAsync(service.BaseAddress.Host, service.BaseAddress.Port);
            var wire = socket.GetStream();
            await wire.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST {Org.Sessions}/{trickled}/event-batches?startOffset={(i + 1) * 1000} HTTP/1.1\r\nHost: {service.BaseAddress.Authority}\r\n" +
                $"Authorization: Bearer {Gateway}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n["));
            trickles.Add((socket, TrickleAsync(wire, stop.Token)));
        }

        try
        {
            await Task.Delay(500);

            // The trickling gateway holds its share, no more: its next upload is turned away, another gateway's is stored.
            var more = await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{trickled}/event-batches?startOffset=900000", Gateway, OctetStream(Lines(1, 1)));
            more.ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy").Body.GetProperty("gatewayLimit").GetInt64().ShouldBe(share);
            (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{other}/event-batches?startOffset=0", GatewayToken("gw-2"), OctetStream(Lines(0, 1)))).ShouldBeAccepted(0);

            // Those past its share were turned away at once; past the grace, the pace cuts the others off:
            // 408, nothing stored, and the share is free again.
            var answers = await Task.WhenAll(trickles.Select(t => t.Answer)).WaitAsync(TimeSpan.FromSeconds(30));
            answers.Count(a => a.StartsWith("HTTP/1.1 503") && a.Contains("gatewayLimit")).ShouldBe((limit - share) / declared, string.Join("\n\n", answers));
            answers.Count(a => a.StartsWith("HTTP/1.1 408") && a.Contains("request-timeout")).ShouldBe(share / declared, string.Join("\n\n", answers));
            (await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{trickled}/event-batches?startOffset=900000", Gateway, OctetStream(Lines(1, 1)))).ShouldBeAccepted(1);
            (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{trickled}", User)).Body.GetProperty("session").GetProperty("batchCount").GetInt32().ShouldBe(2);
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var (socket, _) in trickles) socket.Dispose();
        }

        // JSON whitespace, 40 bytes every 100 ms, until the server answers and closes the connection: what it answered.
        static async Task<string> TrickleAsync(System.Net.Sockets.NetworkStream wire, CancellationToken ct)
        {
            var answer = new StringBuilder();
            var reading = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                try
                {
                    while (await wire.ReadAsync(buffer, ct) is var n and > 0) answer.Append(Encoding.ASCII.GetString(buffer, 0, n));
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                }
            });
            try
            {
                while (!reading.IsCompleted)
                {
                    await wire.WriteAsync(Encoding.ASCII.GetBytes(new string(' ', 40)), ct);
                    await Task.Delay(100, ct);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
            {
            }

            await reading;
            return answer.ToString();
        }
    }

    [Theory]
    [InlineData("event-batches?startOffset=0")]
    [InlineData("logs")]
    public async Task a_body_that_stops_coming_is_answered_408_and_closed_without_an_error_in_the_log(string route)
    {
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string>(Settings)
        {
            ["Uploads:BatchGrace"] = "00:00:02",
            ["Uploads:LegacyLogsGrace"] = "00:00:02",
        });
        var session = await CreateSession(on: service);

        for (var attempt = 0; attempt < 3; attempt++)
        {
            using var socket = new System.Net.Sockets.TcpClient();
            await socket.ConnectAsync(service.BaseAddress.Host, service.BaseAddress.Port);
            var wire = socket.GetStream();
            await wire.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST {Org.Sessions}/{session}/{route} HTTP/1.1\r\nHost: {service.BaseAddress.Authority}\r\nAuthorization: Bearer {Gateway}\r\n" +
                "Content-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n["));

            var answer = await ReadUntilClosedAsync(wire, TimeSpan.FromSeconds(20));

            answer.ShouldStartWith("HTTP/1.1 408");
            answer.ShouldContain("request-timeout");
        }

        // A client can stall as often as it likes: that is no error of the service's, and must not fill its log with them.
        await Task.Delay(500);
        service.Output.ShouldNotContain("fail:", customMessage: service.Output);
        (await SendTo(service, HttpMethod.Get, $"{Org.Sessions}/{session}", User)).Body.GetProperty("session").GetProperty("eventCount").GetInt64().ShouldBe(0);
    }

    [Fact]
    public async Task a_create_body_larger_than_a_session_s_description_needs_is_refused_with_its_limit()
    {
        // Kestrel holds a request to the endpoint's own limit (the in-memory server does not), not to the server's, set for whole recordings.
        var id = Guid.NewGuid();
        var body = new Dictionary<string, object?>
        {
            ["id"] = id, ["projectId"] = "p", ["resourceType"] = "ssh", ["resourceName"] = "web", ["accountName"] = "root", ["userId"] = "alice",
            ["padding"] = new string(' ', PamEventStore.Platform.CreateSessionEndpoint.MaxBodyBytes),
        };

        var reply = await Send(HttpMethod.Post, Org.Sessions, User, JsonContent.Create(body));

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBe(PamEventStore.Platform.CreateSessionEndpoint.MaxBodyBytes);
        (await Send(HttpMethod.Get, $"{Org.Sessions}/{id}", User)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        body.Remove("padding");
        (await Send(HttpMethod.Post, Org.Sessions, User, JsonContent.Create(body))).Status.ShouldBe(HttpStatusCode.Created);
    }

    /// <summary>What the server sent on <paramref name="wire"/> until it closed the connection (or <paramref name="within"/> passed).</summary>
    private static async Task<string> ReadUntilClosedAsync(System.Net.Sockets.NetworkStream wire, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            while (await wire.ReadAsync(buffer, timeout.Token) is var n and > 0) received.Write(buffer, 0, n);
        }
        catch (IOException)
        {
            // A reset after the answer: what was received stands.
        }

        return Encoding.ASCII.GetString(received.ToArray());
    }

    /// <summary>A transaction on <paramref name="connection"/> holding the sessions' stream rows, as another node writing them would.</summary>
    private static async Task<NpgsqlTransaction> HoldStreamsAsync(NpgsqlConnection connection, params Guid[] sessions)
    {
        await connection.OpenAsync();
        var holder = await connection.BeginTransactionAsync();
        await using var lockStreams = new NpgsqlCommand("select id from pam.mt_streams where id = any(@ids) for update", connection, holder);
        lockStreams.Parameters.AddWithValue("ids", sessions);
        await lockStreams.ExecuteNonQueryAsync();
        return holder;
    }

    private static async Task<Reply> SendTo(ServiceProcess service, HttpMethod method, string url, string token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.UserAgent.ParseAdd("cli");
        return await Reply.From(await service.Client.SendAsync(request));
    }

    [Fact]
    public async Task a_body_declared_larger_than_the_limit_is_refused_with_a_problem()
    {
        var session = await CreateSession();
        var big = Batch(Enumerable.Range(0, 400).Select(i => Terminal(i, new string('x', 200))).ToArray());

        var reply = await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(big));

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBe(PamStoreHost.ProcessBatchLimit);
    }

    [Fact]
    public async Task a_chunked_body_that_grows_past_the_limit_is_refused_with_a_problem()
    {
        var session = await CreateSession();
        var big = Batch(Enumerable.Range(0, 400).Select(i => Terminal(i, new string('x', 200))).ToArray());

        var reply = await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(big, chunked: true));

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        (await Send(HttpMethod.Get, $"{Org.Sessions}/{session}", User)).Body.GetProperty("session").GetProperty("batchCount").GetInt64().ShouldBe(0);
    }

    [Fact]
    public async Task a_body_larger_than_kestrel_allows_on_any_endpoint_is_a_problem_not_a_crash()
    {
        var huge = new StringContent("{\"projectId\":\"" + new string('p', 3 * 1024 * 1024) + "\"}", Encoding.UTF8, "application/json");

        var reply = await Send(HttpMethod.Post, Org.Sessions, User, huge);

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBeGreaterThan(0);
        reply.Body.GetProperty("detail").GetString()!.ShouldContain(reply.Body.GetProperty("limit").GetInt64().ToString());
    }

    [Theory]
    [InlineData("create", "80000000")]
    [InlineData("upload", "80000000")]
    [InlineData("upload", "ffffffffffffffff")]
    [InlineData("legacy-logs", "100000000")]
    public async Task a_chunk_size_past_what_kestrel_counts_is_a_bad_request_not_a_crash(string endpoint, string chunkSize)
    {
        var session = await CreateSession();
        var (path, token) = endpoint switch
        {
            "create" => (Org.Sessions, User),
            "upload" => ($"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway),
            _ => ($"{Org.Sessions}/{session}/logs", Gateway),
        };

        var answer = await RawExchangeAsync($"POST {path} HTTP/1.1\r\nHost: {_service.BaseAddress.Authority}\r\nAuthorization: Bearer {token}\r\n" +
                                            $"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunkSize}\r\n[{{\"");

        answer.ShouldStartWith("HTTP/1.1 400");
        answer.ShouldContain("application/problem+json");
        answer.ShouldContain("urn:pam-event-store:problem:invalid-request");
        answer.ShouldNotContain("IOException");
        answer.ShouldContain("\"traceId\"");
        (await Send(HttpMethod.Get, $"{Org.Sessions}/{session}", User)).Body.GetProperty("session").GetProperty("eventCount").GetInt64().ShouldBe(0);
    }

    [Fact]
    public async Task a_create_body_that_stops_arriving_is_answered_request_timeout()
    {
        var answer = await RawExchangeAsync($"POST {Org.Sessions} HTTP/1.1\r\nHost: {_service.BaseAddress.Authority}\r\nAuthorization: Bearer {User}\r\n" +
                                            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"projectId\":");

        answer.ShouldStartWith("HTTP/1.1 408");
        answer.ShouldContain("urn:pam-event-store:problem:request-timeout");
    }

    /// <summary>Sends <paramref name="request"/> as it is on a connection of its own and reads the answer until the server closes it.</summary>
    private async Task<string> RawExchangeAsync(string request)
    {
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(_service.BaseAddress.Host, _service.BaseAddress.Port);
        var wire = socket.GetStream();
        await wire.WriteAsync(Encoding.ASCII.GetBytes(request));
        return await ReadUntilClosedAsync(wire, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task an_unknown_route_and_a_missing_token_are_problems_too()
    {
        (await Send(HttpMethod.Get, "/api/v2/nothing", User)).ShouldBeProblem(HttpStatusCode.NotFound, "route-not-found");

        var anonymous = await Reply.From(await _service.Client.GetAsync($"{Org.Sessions}/{Guid.NewGuid()}"));
        anonymous.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        anonymous.Response.Headers.WwwAuthenticate.ToString().ShouldStartWith("Bearer");
    }

    [Fact]
    public async Task a_live_tail_pushes_a_batch_over_the_socket_as_it_is_stored()
    {
        var session = await CreateSession();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Org.Sessions}/{session}/live");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", User);
        using var tail = await _service.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        tail.StatusCode.ShouldBe(HttpStatusCode.OK);
        using var events = new StreamReader(await tail.Content.ReadAsStreamAsync());

        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 2)))).ShouldBeAccepted(0);

        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var lines = new List<string>();
        while (await events.ReadLineAsync(patience.Token) is { } line && !line.StartsWith("data: ", StringComparison.Ordinal)) lines.Add(line);
        lines.ShouldContain("id: 0");
        lines.ShouldContain("event: batch");
    }

    [Fact]
    public async Task the_token_command_prints_a_token_the_service_accepts()
    {
        var (exitCode, output) = await ServiceProcess.RunCommandAsync(Settings, "token", "--org", _org, "--gateway", "gw-1");
        exitCode.ShouldBe(0, output);
        var token = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last(l => l.StartsWith("eyJ"));

        var session = await CreateSession();
        (await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", token, OctetStream(Lines(0, 1)))).ShouldBeAccepted(0);
    }

    [Theory]
    [InlineData("--Uploads:MaxBatchBytes=1000")]
    [InlineData("--Uploads:MaxBatchBytes", "1000")]
    [InlineData("Uploads:MaxBatchBytes=1000")]
    [InlineData("/Uploads:MaxBatchBytes=1000")]
    [InlineData("--AllowedHosts=*", "--Uploads:MaxBatchBytes=1000")]
    public async Task settings_given_on_the_command_line_apply(params string[] arguments)
    {
        await using var service = await ServiceProcess.StartAsync(Settings, arguments);
        var session = await CreateSession(service);

        var reply = await SendTo(service, HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 20)));

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBe(1000);
    }

    [Theory]
    [InlineData("takes no --scope", "--gateway", "gw-1", "--scope", "pam.sessions.read")]
    [InlineData("--hours must be between 1 and 8760", "--gateway", "gw-1", "--hours", "0")]
    [InlineData("--hours must be between 1 and 8760", "--gateway", "gw-1", "--hours", "99999999")]
    [InlineData("--org holds whitespace", "--gateway", "gw-1", "--org", "a b")]
    public async Task the_token_command_refuses_a_token_the_service_would_not_take(string saying, params string[] arguments)
    {
        var (exitCode, output) = await ServiceProcess.RunCommandAsync(Settings, ["token", .. arguments.Contains("--org") ? [] : new[] { "--org", _org }, .. arguments]);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain(saying);
        output.ShouldNotContain("eyJ");
        output.Split('\n').ShouldNotContain(line => line.TrimStart().StartsWith("at "), output);
    }

    [Fact]
    public async Task the_rotate_keys_command_adds_a_data_key_and_old_batches_stay_readable()
    {
        var session = await CreateSession();
        await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", Gateway, OctetStream(Lines(0, 1)));

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(Settings, "rotate-keys", "--org", _org);

        exitCode.ShouldBe(0, output);
        output.ShouldContain($"{_org}: new data key dk-");
        var page = await Send(HttpMethod.Get, $"{Org.Sessions}/{session}/logs", User);
        page.Body.GetProperty("batches")[0].GetProperty("status").GetString().ShouldBe("ok");
    }

    [Fact]
    public async Task production_without_a_master_key_refuses_to_start()
    {
        var settings = InProduction;
        settings.Remove($"Encryption:MasterKeys:{TestKeys.MasterKeyId}");

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(settings);

        ShouldRefuseInOneLine(exitCode, output, "No master key is configured");
    }

    [Fact]
    public async Task production_without_token_validation_settings_refuses_to_start()
    {
        var settings = InProduction;
        settings.Remove("Auth:SigningKey");

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(settings);

        ShouldRefuseInOneLine(exitCode, output, "No token validation is configured");
        output.ShouldContain("Auth:Authority");
    }

    [Fact]
    public async Task production_without_a_database_refuses_to_start_and_a_setting_out_of_range_stops_a_node_in_one_line()
    {
        var production = InProduction;
        production.Remove("ConnectionStrings:Marten");
        var outOfRange = new Dictionary<string, string>(Settings) { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0", ["Uploads:MaxBatchBytes"] = "0" };

        var (noDatabase, noDatabaseOutput) = await ServiceProcess.RunCommandAsync(production);
        var (badSetting, badSettingOutput) = await ServiceProcess.RunCommandAsync(outOfRange);

        ShouldRefuseInOneLine(noDatabase, noDatabaseOutput, "ConnectionStrings:Marten is not configured");
        ShouldRefuseInOneLine(badSetting, badSettingOutput, "Uploads limits must be positive.");
        noDatabaseOutput.ShouldNotContain(" at ");
        badSettingOutput.ShouldNotContain(" at ");
    }

    public static TheoryData<string, string, string> SettingsThatDoNotWork => new()
    {
        { "Uploads:MaxBatchBytes", "abc", "Failed to convert configuration value 'abc' at 'Uploads:MaxBatchBytes'" },
        { "Uploads:CompressContent", "maybe", "Failed to convert configuration value 'maybe' at 'Uploads:CompressContent'" },
        { "Uploads:MaxBatchBytes", "2147483647", "Uploads:MaxBatchBytes and Uploads:MaxLegacyLogsBytes must be at most" },
        { "Uploads:EndedSessionGrace", "10675198.00:00:00", "Uploads:MaxBatchBytes and Uploads:MaxLegacyLogsBytes must be at most 1073741824 and Uploads:EndedSessionGrace at most 30 days" },
        { "ConnectionStrings:Marten", "garbage", "ConnectionStrings:Marten is not a PostgreSQL connection string" },
        { "ConnectionStrings:Marten", "Host=127.0.0.1;Port=notaport", "ConnectionStrings:Marten is not a PostgreSQL connection string" },
        { "ConnectionStrings:Marten", "Host=127.0.0.1;Port=1;Database=x;Username=x;Password=secret-word;Timeout=2", "PostgreSQL (ConnectionStrings:Marten) cannot be used: Failed to connect to 127.0.0.1:1" },
        { "ASPNETCORE_URLS", "garbage", "Invalid url: 'garbage'" },
        { "Auth:Authority", "http://issuer.example", "Auth:Authority 'http://issuer.example' is not https" },
        { "Auth:Authority", "not-a-url", "Auth:Authority 'not-a-url' is not an absolute http(s) URL" },
    };

    [Theory]
    [MemberData(nameof(SettingsThatDoNotWork))]
    public async Task a_setting_that_cannot_work_stops_the_node_in_one_line_before_it_serves(string key, string value, string reason)
    {
        var settings = new Dictionary<string, string>(InProduction) { [key] = value };
        if (key == "Auth:Authority") settings.Remove("Auth:SigningKey");

        var (exitCode, output) = await ServiceProcess.RunCommandAsync(settings);

        ShouldRefuseInOneLine(exitCode, output, reason);
        output.Split('\n').ShouldNotContain(line => line.TrimStart().StartsWith("at "), output);
        output.ShouldNotContain("secret-word");
    }

    /// <summary>This test's settings in Production, on a port of its own.</summary>
    private Dictionary<string, string> InProduction =>
        new(Settings) { ["ASPNETCORE_ENVIRONMENT"] = "Production", ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" };

    /// <summary>The node refused to start, saying <paramref name="reason"/> in one line: exit code 1, no unhandled exception, no stack trace.</summary>
    private static void ShouldRefuseInOneLine(int exitCode, string output, string reason)
    {
        exitCode.ShouldBe(1, output);
        output.ShouldContain($"PamEventStore does not start: {reason}");
        output.ShouldNotContain("Unhandled exception");
        output.ShouldNotContain(" at PamEventStore.");
    }

    /// <summary>Content without a length, so HttpClient sends Transfer-Encoding: chunked.</summary>
    private sealed class ChunkedContent(byte[] bytes) : ByteArrayContent(bytes)
    {
        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using System.Web;
using PamEventStore.Gateway.Client;
using PamEventStore.Gateway.Workloads;
using PamEventStore.Recording;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.GatewayClient;

/// <summary>
/// The reference client between an unreliable network (or an old platform) and the real service:
/// what the README promises it does on failure, checked against what the service then holds.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_the_reference_gateway_meets_failures(PamStoreHost store)
{
    private const string GatewayId = "gw-1";
    private readonly string _org = $"org-{Guid.NewGuid():N}";
    private readonly DevelopmentTokens _tokens = DevelopmentTokens.FromBase64(TestKeys.SigningKey);

    public enum Fault
    {
        None,

        /// <summary>The service's own 503 (database unavailable), answered without anything stored.</summary>
        Unavailable,

        /// <summary>The connection drops before the request reaches the service.</summary>
        DroppedBeforeSending,

        /// <summary>The service stores the batch, but the connection drops before its answer arrives.</summary>
        DroppedAfterCommit,
    }

    /// <summary>
    /// Between the client and the in-memory service: breaks the next event-batch uploads as queued, or
    /// answers every one as a platform without the route would, and passes everything else on.
    /// </summary>
    private sealed class Network(HttpMessageHandler service) : DelegatingHandler(service)
    {
        public Queue<Fault> Faults { get; } = new();

        /// <summary>What the network does to the next <c>/end</c> requests (Unavailable, or a dropped connection).</summary>
        public Queue<Fault> EndFaults { get; } = new();

        /// <summary>What the network does to the next legacy <c>/logs</c> uploads (Unavailable, or a dropped connection).</summary>
        public Queue<Fault> LegacyFaults { get; } = new();

        private static HttpResponseMessage Unavailable(HttpRequestMessage request)
        {
            var unavailable = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)
            {
                RequestMessage = request,
                Content = new StringContent(
                    """{"type":"urn:pam-event-store:problem:database-unavailable","title":"The database is unavailable","status":503}""",
                    Encoding.UTF8, "application/problem+json"),
            };
            unavailable.Headers.RetryAfter = new(TimeSpan.FromSeconds(5));
            return unavailable;
        }

        /// <summary>An Infisical platform from before event batches: the route does not exist.</summary>
        public bool OldPlatform { get; init; }

        /// <summary>Every request, as "METHOD /path".</summary>
        public List<string> Requests { get; } = [];

        /// <summary>The startOffset of every event-batch upload, in order.</summary>
        public List<long> BatchOffsets { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var path = request.RequestUri!.AbsolutePath;
            Requests.Add($"{request.Method} {path}");
            if (path.EndsWith("/end", StringComparison.Ordinal) && EndFaults.TryDequeue(out var endFault))
            {
                return endFault == Fault.Unavailable ? Unavailable(request) : throw new HttpRequestException("Connection reset by peer", new IOException("dropped"));
            }

            if (path.EndsWith("/logs", StringComparison.Ordinal) && request.Method == HttpMethod.Post && LegacyFaults.TryDequeue(out var legacyFault))
            {
                return legacyFault == Fault.Unavailable ? Unavailable(request) : throw new HttpRequestException("Connection reset by peer", new IOException("dropped"));
            }

            if (!path.EndsWith("/event-batches", StringComparison.Ordinal)) return await base.SendAsync(request, ct);

            BatchOffsets.Add(long.Parse(HttpUtility.ParseQueryString(request.RequestUri.Query)["startOffset"]!));
            if (OldPlatform)
            {
                // Fastify's answer for an unknown route, as the Infisical backend gives it.
                return new HttpResponseMessage(HttpStatusCode.NotFound)
                {
                    RequestMessage = request,
                    Content = new StringContent(
                        $$"""{"message":"Route POST:{{request.RequestUri.PathAndQuery}} not found","error":"Not Found","statusCode":404}""",
                        Encoding.UTF8, "application/json"),
                };
            }

            switch (Faults.TryDequeue(out var fault) ? fault : Fault.None)
            {
                case Fault.Unavailable:
                    return Unavailable(request);
                case Fault.DroppedBeforeSending:
                    throw new HttpRequestException("Connection reset by peer", new IOException("dropped"));
                case Fault.DroppedAfterCommit:
                    using (var response = await base.SendAsync(request, ct))
                    {
                        response.StatusCode.ShouldBe(HttpStatusCode.OK, "the upload the connection drops after must have been stored");
                    }

                    throw new HttpRequestException("Connection reset by peer", new IOException("dropped after the commit"));
                default:
                    return await base.SendAsync(request, ct);
            }
        }
    }

    private (PamApiClient Client, Network Network) ClientThrough(bool oldPlatform = false)
    {
        var network = new Network(store.Host.Server.CreateHandler()) { OldPlatform = oldPlatform };
        return (new PamApiClient(new HttpClient(network) { BaseAddress = store.Host.Server.BaseAddress }), network);
    }

    /// <summary>Records the next stretch of the session, returning the events it added (their JSON).</summary>
    private static List<string> Record(Workload workload, SessionUploader uploader)
    {
        var before = uploader.File.NextBatch()?.EventCount ?? 0;
        workload.Record(uploader.File, 2048, TimeSpan.FromSeconds(10));
        return JsonDocument.Parse(uploader.File.NextBatch()!.Body).RootElement.EnumerateArray().Skip(before).Select(e => e.GetRawText()).ToList();
    }

    /// <summary>A gateway's flush tick, as what came of it: a dropped connection is a failure like any other, and the next tick comes anyway.</summary>
    private static async Task<string> FlushAsync(SessionUploader uploader) =>
        await uploader.FlushAsync(CancellationToken.None) switch
        {
            null => "nothing to send",
            { NoAnswerCame: true } => "dropped",
            var result => $"{(int)result.Status}{(result.Duplicate ? " duplicate" : "")}",
        };

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task a_404_on_the_batch_route_sends_the_whole_recording_through_the_legacy_upload_at_the_end(int flushesBeforeEnd)
    {
        var (client, network) = ClientThrough(oldPlatform: true);
        var workload = new SqlWorkload(5, DateTimeOffset.UtcNow);
        var sessionId = await client.CreateSessionAsync(_tokens.Platform(_org), new NewSession("p", workload.ResourceType, "db-1", "a", "u", GatewayId));
        var uploader = new SessionUploader(client, sessionId, _tokens.Gateway(_org, GatewayId), sendEndOffset: false);
        var recorded = new List<string>();
        for (var i = 0; i < flushesBeforeEnd; i++)
        {
            recorded.AddRange(Record(workload, uploader));
            var result = await uploader.FlushAsync(CancellationToken.None);
            if (i == 0) result.ShouldNotBeNull().Status.ShouldBe(HttpStatusCode.NotFound);
            else result.ShouldBeNull("after the 404 the gateway stops sending batches");
        }

        recorded.AddRange(Record(workload, uploader));
        await uploader.EndAsync("cancellation", CancellationToken.None);

        uploader.LegacyMode.ShouldBeTrue();
        network.BatchOffsets.ShouldBe([0L], "one batch upload, refused as an old platform");
        network.Requests.Skip(1).ShouldBe(
            [$"POST /api/v1/pam/sessions/{sessionId}/event-batches", $"POST /api/v1/pam/sessions/{sessionId}/logs", $"POST /api/v1/pam/sessions/{sessionId}/end"]);

        var session = await client.GetSessionAsync(_tokens.Platform(_org), sessionId);
        session.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeTrue();
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("eventCount").GetInt64().ShouldBe(recorded.Count);
        var page = await client.GetLogsAsync(_tokens.Platform(_org), sessionId, 0, 100);
        page.GetProperty("logs").EnumerateArray().Select(e => e.GetRawText()).ShouldBe(recorded.Select(Canonical));
        var entry = page.GetProperty("batches").EnumerateArray().ShouldHaveSingleItem();
        entry.GetProperty("legacy").GetBoolean().ShouldBeTrue();
        entry.GetProperty("status").GetString().ShouldBe("ok");
    }

    private async Task<(PamApiClient Client, Network Network, Guid SessionId, SessionUploader Uploader)> GatewaySessionAsync(bool oldPlatform = false)
    {
        var (client, network) = ClientThrough(oldPlatform);
        var sessionId = await client.CreateSessionAsync(_tokens.Platform(_org), new NewSession("p", "ssh", "web-1", "a", "u", GatewayId));
        return (client, network, sessionId, new SessionUploader(client, sessionId, _tokens.Gateway(_org, GatewayId), sendEndOffset: !oldPlatform));
    }

    private async Task<JsonElement> SessionAsync(PamApiClient client, Guid sessionId) => await client.GetSessionAsync(_tokens.Platform(_org), sessionId);

    [Fact]
    public async Task the_end_sends_a_backlog_larger_than_one_batch_whole_before_it_ends_the_session()
    {
        var (client, network, sessionId, uploader) = await GatewaySessionAsync();
        // What piles up while a busy session cannot reach the service for a couple of minutes: over 512 KiB.
        new TerminalWorkload(3, DateTimeOffset.UtcNow).Record(uploader.File, 800_000, TimeSpan.FromMinutes(2));
        var recorded = uploader.File.NextBatch()!.EventCount;

        var end = await uploader.EndAsync("cancellation", CancellationToken.None);

        end.Ended.ShouldBeTrue();
        network.BatchOffsets.Count.ShouldBeGreaterThan(1);
        uploader.File.AcknowledgedOffset.ShouldBe(uploader.File.WrittenOffset);
        var session = await SessionAsync(client, sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("eventCount").GetInt64().ShouldBe(recorded);
    }

    [Theory]
    [InlineData(Fault.Unavailable)]
    [InlineData(Fault.DroppedBeforeSending)]
    public async Task a_final_flush_that_fails_leaves_the_session_open_and_the_recording_kept_for_the_next_try(Fault fault)
    {
        var (client, network, sessionId, uploader) = await GatewaySessionAsync();
        new TerminalWorkload(4, DateTimeOffset.UtcNow).Record(uploader.File, 4096, TimeSpan.FromSeconds(10));
        var recorded = uploader.File.NextBatch()!.EventCount;
        network.Faults.Enqueue(fault);

        var failed = await uploader.EndAsync("cancellation", CancellationToken.None);

        failed.Ended.ShouldBeFalse();
        failed.Seal.ShouldBeNull();
        network.Requests.ShouldNotContain($"POST /api/v1/pam/sessions/{sessionId}/end");
        (await SessionAsync(client, sessionId)).GetProperty("status").GetString().ShouldNotBe("ended");

        var ended = await uploader.EndAsync("cancellation", CancellationToken.None);

        ended.Ended.ShouldBeTrue();
        var session = await SessionAsync(client, sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("eventCount").GetInt64().ShouldBe(recorded);
    }

    [Theory]
    [InlineData(Fault.Unavailable)]
    [InlineData(Fault.DroppedBeforeSending)]
    public async Task an_end_that_fails_says_so_and_the_next_try_ends_the_session(Fault fault)
    {
        var (client, network, sessionId, uploader) = await GatewaySessionAsync();
        new TerminalWorkload(5, DateTimeOffset.UtcNow).Record(uploader.File, 4096, TimeSpan.FromSeconds(10));
        network.EndFaults.Enqueue(fault);

        var failed = await uploader.EndAsync("cancellation", CancellationToken.None);

        failed.Ended.ShouldBeFalse();
        failed.Failed.ShouldNotBeNull().Status.ShouldBe(fault == Fault.Unavailable ? HttpStatusCode.ServiceUnavailable : 0);
        uploader.File.HasPending.ShouldBeFalse("the recording was stored before the end was asked for");
        (await SessionAsync(client, sessionId)).GetProperty("status").GetString().ShouldNotBe("ended");

        (await uploader.EndAsync("cancellation", CancellationToken.None)).Ended.ShouldBeTrue();
        (await SessionAsync(client, sessionId)).GetProperty("status").GetString().ShouldBe("ended");
    }

    [Theory]
    [InlineData(Fault.Unavailable)]
    [InlineData(Fault.DroppedBeforeSending)]
    public async Task a_legacy_upload_that_fails_leaves_the_session_open_and_the_recording_kept_for_the_next_try(Fault fault)
    {
        var (client, network, sessionId, uploader) = await GatewaySessionAsync(oldPlatform: true);
        var recorded = Record(new SqlWorkload(4, DateTimeOffset.UtcNow), uploader);
        network.LegacyFaults.Enqueue(fault);

        var failed = await uploader.EndAsync("cancellation", CancellationToken.None);

        failed.Ended.ShouldBeFalse();
        uploader.LegacyMode.ShouldBeTrue();
        network.Requests.ShouldNotContain($"POST /api/v1/pam/sessions/{sessionId}/end");
        (await SessionAsync(client, sessionId)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();

        (await uploader.EndAsync("cancellation", CancellationToken.None)).Ended.ShouldBeTrue();
        var session = await SessionAsync(client, sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        session.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeTrue();
        session.GetProperty("eventCount").GetInt64().ShouldBe(recorded.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task after_failed_uploads_it_sends_again_from_the_same_offset_and_every_event_is_stored_once(bool sendEndOffset)
    {
        var (client, network) = ClientThrough();
        var workload = new TerminalWorkload(11, DateTimeOffset.UtcNow);
        var sessionId = await client.CreateSessionAsync(_tokens.Platform(_org), new NewSession("p", workload.ResourceType, "web-1", "a", "u", GatewayId));
        var uploader = new SessionUploader(client, sessionId, _tokens.Gateway(_org, GatewayId), sendEndOffset);

        // Each tick: what the network does to the upload, and whether anything was recorded since the last.
        (Fault Fault, bool Records)[] ticks =
        [
            (Fault.None, true),
            (Fault.Unavailable, true),
            (Fault.None, true), // the 503's events and the new ones, from the same offset
            (Fault.DroppedBeforeSending, true),
            (Fault.None, true),
            (Fault.DroppedAfterCommit, true),
            (Fault.None, false), // the same bytes again: a duplicate
            (Fault.DroppedAfterCommit, true),
            (Fault.None, true), // the stored events followed by more: only the new ones are stored
        ];
        var recorded = new List<string>();
        var outcomes = new List<string>();
        var starts = new List<long>();
        foreach (var (fault, records) in ticks)
        {
            if (records) recorded.AddRange(Record(workload, uploader));
            network.Faults.Enqueue(fault);
            starts.Add(uploader.File.AcknowledgedOffset);
            outcomes.Add(await FlushAsync(uploader));
        }

        await uploader.EndAsync("cancellation", CancellationToken.None);

        outcomes.ShouldBe(["200", "503", "200", "dropped", "200", "dropped", "200 duplicate", "dropped", "200"]);
        network.BatchOffsets.ShouldBe(starts, "each upload starts at the acknowledged offset");
        for (var i = 1; i < ticks.Length; i++)
        {
            if (ticks[i - 1].Fault == Fault.None) starts[i].ShouldBeGreaterThan(starts[i - 1], $"tick {i} follows an acknowledged upload");
            else starts[i].ShouldBe(starts[i - 1], $"tick {i} retries tick {i - 1}'s failed upload from its offset");
        }

        uploader.File.AcknowledgedOffset.ShouldBe(uploader.File.WrittenOffset);

        var session = await client.GetSessionAsync(_tokens.Platform(_org), sessionId);
        session.GetProperty("status").GetString().ShouldBe("ended");
        // Stored: ticks 0, 2, 4, 5 (committed, answer lost), 7 (likewise) and 8 (only what 7 did not hold).
        session.GetProperty("batchCount").GetInt64().ShouldBe(6);
        session.GetProperty("eventCount").GetInt64().ShouldBe(recorded.Count);
        session.GetProperty("conflictCount").GetInt64().ShouldBe(0);
        session.GetProperty("gapCount").GetInt64().ShouldBe(0);
        session.GetProperty("complete").GetBoolean().ShouldBeTrue();

        var page = await client.GetLogsAsync(_tokens.Platform(_org), sessionId, 0, 100);
        page.GetProperty("batchCount").GetInt32().ShouldBe(6);
        page.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
        page.GetProperty("batches").EnumerateArray().ShouldAllBe(b => b.GetProperty("status").GetString() == "ok");
        page.GetProperty("logs").EnumerateArray().Select(e => e.GetRawText()).ShouldBe(recorded.Select(Canonical));
    }

    private static string Canonical(string goJson)
    {
        RecordingParser.TryParseBatch(Encoding.UTF8.GetBytes("[" + goJson + "]"), out var batch, out _).ShouldBeTrue();
        return Encoding.UTF8.GetString(batch!.Canonical.Span)[1..^1];
    }
}

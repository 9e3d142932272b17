using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PamEventStore.Gateway;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

/// <summary>
/// A node holds at most <c>Uploads:MaxBytesInFlight</c> of uploads at once; past it, uploads are turned
/// away (503) before anything is read or stored, and taken when sent again. Legacy uploads, whole
/// recordings, take turns (<c>Uploads:LegacyLogsAtOnce</c>) and wait for one before they are read.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_the_node_is_busy(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private UploadAdmission Admission => store.Host.Services.GetRequiredService<UploadAdmission>();

    [Fact]
    public async Task an_upload_past_the_limit_is_turned_away_unstored_and_taken_when_sent_again()
    {
        var session = await _org.CreateSessionAsync();
        var others = Admission.TryAdmit(Admission.Limit);
        others.ShouldNotBeNull();

        Reply busy;
        using (others)
        {
            busy = (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
        }

        busy.Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(1));
        busy.Body.GetProperty("limit").GetInt64().ShouldBe(Admission.Limit);
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt32().ShouldBe(0);

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
        Admission.Held.ShouldBe(0);
    }

    [Fact]
    public async Task what_the_node_holds_and_what_it_turns_away_are_measured()
    {
        long held = -1, turnedAway = 0, legacyTurnedAway = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == UploadCommits.MeterName && instrument.Name is "pam.uploads.bytes_held" or "pam.uploads.turned_away") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "pam.uploads.bytes_held") Interlocked.Exchange(ref held, value);
            else if (tags.ToArray().Contains(new KeyValuePair<string, object?>("upload", "legacy"))) Interlocked.Add(ref legacyTurnedAway, value);
            else Interlocked.Add(ref turnedAway, value);
        });
        listener.Start();

        using (Admission.TryAdmit(Admission.Limit).ShouldNotBeNull())
        {
            Admission.TryAdmit(1).ShouldBeNull();
            listener.RecordObservableInstruments();
        }

        using (await TakeEveryLegacyTurnAsync())
        {
            (await Admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldBeNull();
        }

        held.ShouldBe(Admission.Limit);
        turnedAway.ShouldBe(1);
        legacyTurnedAway.ShouldBe(1);
    }

    [Fact]
    public async Task every_answer_gives_back_what_its_upload_held()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeDuplicate();
        (await _org.UploadAsync(session, 0, Lines(10, 3))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
        (await _org.UploadAsync(session, 500, "[{\"eventType\":1}]")).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-recording");
        (await _org.UploadAsync(Guid.NewGuid(), 0, Lines(0, 3))).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.UploadRawAsync(session, "startOffset=900", TooLarge)).ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");

        Admission.Held.ShouldBe(0);
    }

    private byte[] TooLarge => Encoding.UTF8.GetBytes(Lines(0, 1)).Concat(new byte[store.Host.Services.GetRequiredService<IOptions<UploadOptions>>().Value.MaxBatchBytes]).ToArray();

    [Fact]
    public async Task what_would_be_refused_anyway_is_refused_as_such_even_when_the_node_is_full()
    {
        var session = await _org.CreateSessionAsync();

        using (Admission.TryAdmit(Admission.Limit).ShouldNotBeNull())
        {
            (await _org.UploadRawAsync(session, "startOffset=0", TooLarge)).ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
            (await _org.UploadRawAsync(session, "startOffset=0", Encoding.UTF8.GetBytes(Lines(0, 1)), contentType: "text/plain")).ShouldBeProblem(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        }
    }

    [Fact]
    public void uploads_are_let_in_up_to_the_limit_and_one_always_when_nothing_is_held()
    {
        var admission = new UploadAdmission(Options.Create(new UploadOptions { MaxBytesInFlight = 100 }));

        var first = admission.TryAdmit(60).ShouldNotBeNull();
        var second = admission.TryAdmit(40).ShouldNotBeNull();
        admission.TryAdmit(1).ShouldBeNull();
        admission.Held.ShouldBe(100);

        first.Dispose();
        first.Dispose();
        admission.Held.ShouldBe(40);
        admission.TryAdmit(61).ShouldBeNull();
        using (admission.TryAdmit(60).ShouldNotBeNull()) admission.Held.ShouldBe(100);

        second.Dispose();
        using (admission.TryAdmit(1_000).ShouldNotBeNull()) admission.TryAdmit(1).ShouldBeNull();
        admission.Held.ShouldBe(0);
    }

    [Fact]
    public void a_gateway_holds_at_most_its_share_while_the_others_are_let_in()
    {
        var admission = new UploadAdmission(Options.Create(new UploadOptions { MaxBytesInFlight = 1_000, MaxBytesInFlightPerGateway = 300 }));
        var (a, b) = (UploadAdmission.Holder("org", "gw-a"), UploadAdmission.Holder("org", "gw-b"));

        var first = admission.TryAdmit(200, a).ShouldNotBeNull();
        using (admission.TryAdmit(100, a).ShouldNotBeNull())
        {
            admission.TryAdmit(1, a, out var full).ShouldBeNull();
            full.ShouldBeTrue();
            admission.HeldBy(a).ShouldBe(300);

            // Another gateway, or the same gateway id of another org, is let in.
            using (admission.TryAdmit(300, b).ShouldNotBeNull()) admission.TryAdmit(300, UploadAdmission.Holder("other-org", "gw-a")).ShouldNotBeNull().Dispose();
        }

        first.Dispose();
        admission.HeldBy(a).ShouldBe(0);

        // A gateway holding nothing has one upload let in whatever its size, as far as the node's limit allows; then none.
        using (admission.TryAdmit(500, a).ShouldNotBeNull())
        {
            admission.TryAdmit(1, a).ShouldBeNull();
            admission.TryAdmit(500, b).ShouldNotBeNull().Dispose();
            admission.TryAdmit(501, b, out var full).ShouldBeNull();
            full.ShouldBeFalse();
        }

        // An empty body's lease counts nothing, whenever it is given back.
        var empty = admission.TryAdmit(0, a).ShouldNotBeNull();
        admission.TryAdmit(10, a).ShouldNotBeNull().Dispose();
        empty.Dispose();
        (admission.Held, admission.HeldBy(a)).ShouldBe((0, 0));
    }

    [Fact]
    public async Task a_gateway_whose_share_is_held_is_turned_away_and_another_gateway_is_stored()
    {
        var mine = await _org.CreateSessionAsync();
        var theirs = await _org.CreateSessionAsync(gatewayId: "gw-2");

        using (Admission.TryAdmit(Admission.HolderLimit, UploadAdmission.Holder(_org.Id, Org.Gateway)).ShouldNotBeNull())
        {
            var busy = (await _org.UploadAsync(mine, 0, Lines(0, 3))).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
            busy.Body.GetProperty("gatewayLimit").GetInt64().ShouldBe(Admission.HolderLimit);
            busy.Response.Headers.RetryAfter.ShouldNotBeNull();
            (await _org.UploadAsync(theirs, 0, Lines(0, 3), token: _org.GatewayToken("gw-2"))).ShouldBeAccepted(0);
        }

        (await _org.SessionAsync(mine)).GetProperty("batchCount").GetInt32().ShouldBe(0);
        (await _org.UploadAsync(mine, 0, Lines(0, 3))).ShouldBeAccepted(0);
        Admission.Held.ShouldBe(0);
    }

    [Fact]
    public async Task a_batch_whose_body_stops_coming_is_answered_408_unstored_and_gives_its_share_back()
    {
        var session = await _org.CreateSessionAsync();
        var options = store.Host.Services.GetRequiredService<IOptions<UploadOptions>>().Value;

        // Declared as one second's worth at the required pace; a first part comes, then nothing.
        using var stalled = new StalledContent(options.BatchMinBytesPerSecond, Encoding.UTF8.GetBytes("["));
        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=0", _org.GatewayToken(), stalled).WaitAsync(TimeSpan.FromSeconds(30));

        reply.ShouldBeProblem(HttpStatusCode.RequestTimeout, "request-timeout");
        Admission.Held.ShouldBe(0);
        (await _org.SessionAsync(session)).GetProperty("batchCount").GetInt32().ShouldBe(0);
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
    }

    [Fact]
    public async Task uploads_let_in_at_once_never_hold_more_than_the_limit_together()
    {
        var admission = new UploadAdmission(Options.Create(new UploadOptions { MaxBytesInFlight = 1_000 }));
        long most = 0, admitted = 0;

        await Parallel.ForAsync(0, 20_000, async (i, _) =>
        {
            using var lease = admission.TryAdmit(7 + i % 90);
            if (lease is null) return;
            Interlocked.Increment(ref admitted);
            var held = admission.Held;
            long seen;
            while (held > (seen = Interlocked.Read(ref most)) && Interlocked.CompareExchange(ref most, held, seen) != seen) { }
            await Task.Yield();
        });

        admitted.ShouldBeGreaterThan(0);
        most.ShouldBeLessThanOrEqualTo(1_000);
        admission.Held.ShouldBe(0);
    }

    [Fact]
    public async Task a_legacy_upload_waits_for_a_turn_and_is_stored_once_one_is_given_back()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        using (var turns = await TakeEveryLegacyTurnAsync())
        {
            var upload = _org.UploadLegacyAsync(session, Queries(3));
            await Task.Delay(PamStoreHost.LegacyLogsWait / 4);
            upload.IsCompleted.ShouldBeFalse();
            turns.GiveBackOne();

            (await upload).Status.ShouldBe(HttpStatusCode.OK);
        }

        (await _org.SessionAsync(session)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeTrue();
    }

    [Fact]
    public async Task a_legacy_upload_waiting_for_a_turn_has_its_body_taken_only_once_it_has_one()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        var body = new CountedContent(Encoding.UTF8.GetBytes($$"""{"logs":{{Queries(3)}}{{new string(' ', 1024 * 1024)}}}"""));
        using (var turns = await TakeEveryLegacyTurnAsync())
        {
            var upload = _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/logs", _org.GatewayToken(), body);
            await Task.Delay(PamStoreHost.LegacyLogsWait / 4);

            // No more than the server buffers ahead of the endpoint (the test server's pipe: 64 KiB).
            upload.IsCompleted.ShouldBeFalse();
            body.Taken.ShouldBeLessThan(body.Length / 8);
            turns.GiveBackOne();

            (await upload).Status.ShouldBe(HttpStatusCode.OK);
            body.Taken.ShouldBe(body.Length);
        }
    }

    [Fact]
    public async Task a_legacy_upload_whose_body_stops_coming_is_answered_408_unstored_and_gives_its_turn_back()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        var options = store.Host.Services.GetRequiredService<IOptions<UploadOptions>>().Value;

        // Declared as one second's worth at the required pace; a first part comes, then nothing.
        using var stalled = new StalledContent(options.LegacyLogsMinBytesPerSecond, Encoding.UTF8.GetBytes("{\"logs\":["));
        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/logs", _org.GatewayToken(), stalled).WaitAsync(TimeSpan.FromSeconds(30));

        reply.ShouldBeProblem(HttpStatusCode.RequestTimeout, "request-timeout");
        (await _org.SessionAsync(session)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        (await TakeEveryLegacyTurnAsync()).Dispose();
        (await _org.UploadLegacyAsync(session, Queries(3))).Status.ShouldBe(HttpStatusCode.OK);
    }

    /// <summary>A body that declares <paramref name="length"/> bytes, sends <paramref name="first"/> and then nothing until disposed.</summary>
    private sealed class StalledContent(long length, byte[] first) : HttpContent
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(first);
            await stream.FlushAsync();
            await _released.Task;
        }

        protected override bool TryComputeLength(out long declared)
        {
            declared = length;
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            _released.TrySetResult();
            base.Dispose(disposing);
        }
    }

    /// <summary>A body whose bytes are counted as the server takes them, 8 KiB at a time.</summary>
    private sealed class CountedContent(byte[] bytes) : HttpContent
    {
        private long _taken;

        public long Length => bytes.Length;

        public long Taken => Interlocked.Read(ref _taken);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var at = 0; at < bytes.Length; at += 8192)
            {
                var chunk = bytes.AsMemory(at, Math.Min(8192, bytes.Length - at));
                await stream.WriteAsync(chunk);
                await stream.FlushAsync();
                Interlocked.Add(ref _taken, chunk.Length);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes.Length;
            return true;
        }
    }

    [Fact]
    public async Task a_legacy_upload_without_a_turn_in_time_is_turned_away_unstored_and_taken_when_sent_again()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");

        Reply busy;
        using (await TakeEveryLegacyTurnAsync())
        {
            busy = (await _org.UploadLegacyAsync(session, Queries(3))).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
        }

        busy.Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(5));
        busy.Body.GetProperty("legacyUploadsAtOnce").GetInt32().ShouldBe(Admission.LegacyTurns);
        (await _org.SessionAsync(session)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();

        (await _org.UploadLegacyAsync(session, Queries(3))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.SessionAsync(session)).GetProperty("eventCount").GetInt64().ShouldBe(3);
    }

    [Fact]
    public async Task a_legacy_upload_gives_its_turn_back_whatever_its_answer()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");

        (await _org.UploadLegacyAsync(session, Queries(3))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadLegacyAsync(session, Queries(3, "drop table"))).ShouldBeProblem(HttpStatusCode.Conflict, "logs-conflict");
        (await _org.UploadLegacyAsync(session, "[{\"eventType\":1}]")).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-recording");

        (await TakeEveryLegacyTurnAsync()).Dispose();
    }

    [Fact]
    public async Task legacy_uploads_take_no_more_turns_than_there_are_and_each_is_given_back_once()
    {
        var admission = new UploadAdmission(Options.Create(new UploadOptions { LegacyLogsAtOnce = 2, LegacyLogsWait = TimeSpan.FromMilliseconds(50) }));

        var first = (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldNotBeNull();
        using var second = (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldNotBeNull();
        (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldBeNull();

        first.Dispose();
        first.Dispose();
        using var third = (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldNotBeNull();
        (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldBeNull();

        var patient = new UploadAdmission(Options.Create(new UploadOptions { LegacyLogsAtOnce = 1, LegacyLogsWait = TimeSpan.FromMinutes(5) }));
        using var held = (await patient.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldNotBeNull();
        using var gone = new CancellationTokenSource();
        var waiting = patient.WaitForLegacyTurnAsync(gone.Token);
        await gone.CancelAsync();
        await Should.ThrowAsync<OperationCanceledException>(waiting);
    }

    [Fact]
    public async Task no_more_legacy_uploads_wait_for_a_turn_than_the_limit_and_the_next_is_turned_away_at_once()
    {
        var admission = new UploadAdmission(Options.Create(new UploadOptions { LegacyLogsAtOnce = 1, LegacyLogsWaiting = 1, LegacyLogsWait = TimeSpan.FromMinutes(5) }));
        var held = (await admission.WaitForLegacyTurnAsync(CancellationToken.None)).ShouldNotBeNull();

        var waiting = admission.WaitForLegacyTurnAsync(CancellationToken.None);
        var past = admission.WaitForLegacyTurnAsync(CancellationToken.None);

        past.IsCompleted.ShouldBeTrue();
        (await past).ShouldBeNull();
        waiting.IsCompleted.ShouldBeFalse();
        held.Dispose();
        var next = (await waiting).ShouldNotBeNull();

        // Its place among those waiting is free again.
        var after = admission.WaitForLegacyTurnAsync(CancellationToken.None);
        after.IsCompleted.ShouldBeFalse();
        next.Dispose();
        (await after).ShouldNotBeNull().Dispose();
    }

    [Fact]
    public async Task a_legacy_upload_past_those_waiting_for_a_turn_is_turned_away_unstored_while_they_wait()
    {
        var waitingSession = await _org.CreateSessionAsync(resourceType: "postgres");
        var pastSession = await _org.CreateSessionAsync(resourceType: "postgres");
        Reply busy;
        Task<Reply> waiting;
        using (await TakeEveryLegacyTurnAsync())
        {
            // The test host lets one upload wait (PamStoreHost.LegacyLogsWaiting).
            waiting = _org.UploadLegacyAsync(waitingSession, Queries(3));
            for (var polled = 0; Admission.LegacyWaiting == 0 && polled < 200; polled++) await Task.Delay(10);
            Admission.LegacyWaiting.ShouldBe(PamStoreHost.LegacyLogsWaiting);
            busy = (await _org.UploadLegacyAsync(pastSession, Queries(3))).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
            waiting.IsCompleted.ShouldBeFalse();
        }

        (await waiting).Status.ShouldBe(HttpStatusCode.OK);
        busy.Response.Headers.RetryAfter.ShouldNotBeNull();
        (await _org.SessionAsync(pastSession)).GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        (await _org.UploadLegacyAsync(pastSession, Queries(3))).Status.ShouldBe(HttpStatusCode.OK);
    }

    /// <summary>Every legacy turn of the node, as if that many legacy uploads were being stored; fails if one is not free.</summary>
    private Task<HeldTurns> TakeEveryLegacyTurnAsync() =>
        HeldTurns.TakeAllAsync(Admission.LegacyTurns, () => Admission.WaitForLegacyTurnAsync(CancellationToken.None));
}

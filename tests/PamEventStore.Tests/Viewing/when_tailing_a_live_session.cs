using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using PamEventStore.Viewing;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Viewing;

/// <summary>The UI's live view: a session's batches pushed as server-sent events as they are stored, then its end.</summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_tailing_a_live_session(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private sealed record ServerEvent(string? Id, string Name, JsonElement Data);

    /// <summary>A live tail as a browser's EventSource reads it: events separated by blank lines, comments skipped.</summary>
    private sealed class EventStream(HttpResponseMessage response, StreamReader reader) : IDisposable
    {
        public HttpResponseMessage Response => response;

        public static async Task<EventStream> OpenAsync(PamStoreHost store, string url, string token, string? lastEventId = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
            var response = await store.Host.Server.CreateClient().SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return new EventStream(response, new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8));
        }

        /// <summary>The next event, or null once the stream has closed.</summary>
        public async Task<ServerEvent?> NextAsync()
        {
            using var timeout = new CancellationTokenSource(Patience);
            string? id = null, name = null, data = null;
            while (await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (name is null) continue;
                    return new ServerEvent(id, name, JsonDocument.Parse(data!).RootElement.Clone());
                }

                if (line.StartsWith(':')) continue;
                var (field, value) = line.Split(": ", 2) is [var f, var v] ? (f, v) : (line, "");
                switch (field)
                {
                    case "id": id = value; break;
                    case "event": name = value; break;
                    case "data": data = value; break;
                }
            }

            return null;
        }

        public void Dispose()
        {
            reader.Dispose();
            response.Dispose();
        }
    }

    private string Live(Guid session, string query = "") => $"{Org.Sessions}/{session}/live{query}";

    private static string LineText(JsonElement e) => Encoding.UTF8.GetString(e.GetProperty("data").GetBytesFromBase64());

    [Fact]
    public async Task stored_batches_then_new_ones_arrive_in_order_then_the_end_with_its_seal_and_the_stream_closes_after_the_grace_window()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        (await _org.UploadAsync(session, 100, Lines(2, 2), endOffset: 200)).ShouldBeAccepted(1);

        using var tail = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken());
        tail.Response.StatusCode.ShouldBe(HttpStatusCode.OK);
        tail.Response.Content.Headers.ContentType!.MediaType.ShouldBe("text/event-stream");

        var first = (await tail.NextAsync()).ShouldNotBeNull();
        var second = (await tail.NextAsync()).ShouldNotBeNull();
        (first.Id, first.Name, second.Id).ShouldBe(("0", "batch", "1"));
        first.Data.GetProperty("logs").EnumerateArray().Select(LineText).ShouldBe(["line 0\r\n", "line 1\r\n"]);
        first.Data.GetProperty("batch").GetProperty("status").GetString().ShouldBe("ok");

        // Uploaded while the tail waits: pushed without waiting for a page to be asked for.
        (await _org.UploadAsync(session, 200, Lines(4, 1), endOffset: 300)).ShouldBeAccepted(2);
        var third = (await tail.NextAsync()).ShouldNotBeNull();
        third.Id.ShouldBe("2");
        third.Data.GetProperty("logs").EnumerateArray().Select(LineText).ShouldBe(["line 4\r\n"]);

        var ended = (await _org.EndAsync(session)).Body.GetProperty("session");
        var end = (await tail.NextAsync()).ShouldNotBeNull();
        end.Name.ShouldBe("end");
        end.Data.GetProperty("session").GetProperty("status").GetString().ShouldBe("ended");
        end.Data.GetProperty("session").GetProperty("seal").GetRawText().ShouldBe(ended.GetProperty("seal").GetRawText());

        // A final flush within the grace window still arrives; once it has passed, the stream closes.
        (await _org.UploadAsync(session, 300, Lines(5, 1), endOffset: 400)).ShouldBeAccepted(3);
        (await tail.NextAsync()).ShouldNotBeNull().Id.ShouldBe("3");
        store.Clock.Advance(TimeSpan.FromMinutes(3));
        (await tail.NextAsync()).ShouldBeNull();
    }

    [Fact]
    public async Task without_from_it_begins_with_the_next_batch_stored()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);

        using var tail = await EventStream.OpenAsync(store, Live(session), _org.UserToken());
        (await _org.UploadAsync(session, 100, Lines(2, 1), endOffset: 200)).ShouldBeAccepted(1);

        var next = (await tail.NextAsync()).ShouldNotBeNull();
        next.Id.ShouldBe("1");
        next.Data.GetProperty("sequence").GetInt64().ShouldBe(1);
    }

    [Fact]
    public async Task a_reconnect_with_its_last_event_id_resumes_after_that_batch()
    {
        var session = await _org.CreateSessionAsync();
        for (var b = 0; b < 3; b++) (await _org.UploadAsync(session, b * 100, Lines(b, 1), endOffset: (b + 1) * 100)).ShouldBeAccepted(b);

        using var tail = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken(), lastEventId: "0");

        (await tail.NextAsync()).ShouldNotBeNull().Id.ShouldBe("1");
        (await tail.NextAsync()).ShouldNotBeNull().Id.ShouldBe("2");
    }

    [Fact]
    public async Task each_batch_is_what_its_log_page_reads()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        (await _org.UploadAsync(session, 0, Queries(3))).ShouldBeAccepted(0);

        using var tail = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken());
        var batch = (await tail.NextAsync()).ShouldNotBeNull();
        var page = (await _org.LogsAsync(session)).Body;

        batch.Data.GetProperty("logs").GetRawText().ShouldBe(page.GetProperty("logs").GetRawText());
        batch.Data.GetProperty("batch").GetRawText().ShouldBe(page.GetProperty("batches")[0].GetRawText());
    }

    [Fact]
    public async Task a_legacy_recording_arrives_as_one_more_batch_and_the_stream_closes_after_the_end()
    {
        var session = await _org.CreateSessionAsync(resourceType: "postgres");
        (await _org.UploadLegacyAsync(session, Queries(2))).Status.ShouldBe(HttpStatusCode.OK);
        await _org.EndAsync(session);

        using var tail = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken());

        var legacy = (await tail.NextAsync()).ShouldNotBeNull();
        legacy.Id.ShouldBe("0");
        legacy.Data.GetProperty("batch").GetProperty("legacy").GetBoolean().ShouldBeTrue();
        legacy.Data.GetProperty("logs").GetArrayLength().ShouldBe(2);
        (await tail.NextAsync()).ShouldNotBeNull().Name.ShouldBe("end");
        (await tail.NextAsync()).ShouldBeNull();
    }

    [Fact]
    public async Task only_a_reader_of_the_sessions_project_and_org_may_tail_it()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-1");
        var otherProject = TestKeys.Token(new TokenClaims(_org.Id, "bob", "user", Scopes: [PamScopes.Read], ProjectIds: ["project-2"]));

        (await _org.SendAsync(HttpMethod.Get, Live(session), _org.GatewayToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _org.SendAsync(HttpMethod.Get, Live(session), _org.UserToken(PamScopes.Create))).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _org.SendAsync(HttpMethod.Get, Live(session), otherProject)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.SendAsync(HttpMethod.Get, Live(session), store.NewOrg().UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.SendAsync(HttpMethod.Get, Live(Guid.NewGuid()), _org.UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Theory]
    [InlineData("?from=-1")]
    [InlineData("?from=abc")]
    [InlineData("?from=1&from=2")]
    public async Task a_bad_from_is_a_bad_request(string query)
    {
        var session = await _org.CreateSessionAsync();

        (await _org.SendAsync(HttpMethod.Get, Live(session, query), _org.UserToken())).ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task a_bad_last_event_id_is_a_bad_request()
    {
        var session = await _org.CreateSessionAsync();

        using var tail = await EventStream.OpenAsync(store, Live(session), _org.UserToken(), lastEventId: "not-a-sequence");

        tail.Response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task a_commit_on_this_node_wakes_the_tails_of_its_session_before_their_poll()
    {
        var signals = new SessionSignals();
        var session = Guid.NewGuid();
        using var listening = signals.Listen("org", session);
        using var elsewhere = signals.Listen("org", Guid.NewGuid());

        // Signalled before the tail waits (while it reads): its wait still wakes.
        signals.Signal("org", session);

        await listening.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        elsewhere.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None).IsCompleted.ShouldBeFalse();
    }

    [Fact]
    public async Task one_tail_whose_wait_ran_out_does_not_keep_another_of_the_same_session_from_waking()
    {
        var signals = new SessionSignals();
        var session = Guid.NewGuid();
        var early = signals.Listen("org", session);
        using var late = signals.Listen("org", session);
        await early.WaitAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        early.Dispose();

        signals.Signal("org", session);

        await late.WaitAsync(TimeSpan.FromMinutes(1), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task reading_a_tails_batches_takes_a_log_page_turn_and_waits_for_one()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        var turns = store.Host.Services.GetRequiredService<PageTurns>();

        EventStream tail;
        Task<ServerEvent?> next;
        // Every turn is taken before the tail opens: it reads its first batch as soon as its headers are out.
        using (await HeldTurns.TakeAllAsync(turns.AtOnce, () => turns.TakeAsync(CancellationToken.None)))
        {
            tail = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken());
            next = tail.NextAsync();
            (await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(2)))).ShouldNotBe(next, "no batch is read while every page turn is taken");
        }

        using (tail) (await next).ShouldNotBeNull().Id.ShouldBe("0");
    }

    [Fact]
    public async Task a_tail_stays_open_while_an_upload_taken_within_the_grace_window_may_still_commit()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 1), endOffset: 100)).ShouldBeAccepted(0);
        using var tail = await EventStream.OpenAsync(store, Live(session), _org.UserToken());
        await _org.EndAsync(session);
        (await tail.NextAsync()).ShouldNotBeNull().Name.ShouldBe("end");

        store.Clock.Advance(TimeSpan.FromSeconds(125));
        var next = tail.NextAsync();
        (await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(2.5)))).ShouldNotBe(next, "just past the window, an upload it took may still be committing");

        store.Clock.Advance(TimeSpan.FromMinutes(1));
        (await next).ShouldBeNull();
    }

    [Fact]
    public async Task a_reconnect_to_a_tail_that_is_over_is_told_to_stop()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 1), endOffset: 100)).ShouldBeAccepted(0);
        await _org.EndAsync(session);
        store.Clock.Advance(TimeSpan.FromMinutes(3));

        // What an EventSource does once its stream closed: it reconnects with the last id it had. 204 stops it.
        using (var reconnect = await EventStream.OpenAsync(store, Live(session), _org.UserToken(), lastEventId: "0"))
        {
            reconnect.Response.StatusCode.ShouldBe(HttpStatusCode.NoContent);
        }

        // From the start, the ended session still reads whole, then its end, then the stream closes.
        using var replay = await EventStream.OpenAsync(store, Live(session, "?from=0"), _org.UserToken());
        (await replay.NextAsync()).ShouldNotBeNull().Id.ShouldBe("0");
        (await replay.NextAsync()).ShouldNotBeNull().Name.ShouldBe("end");
        (await replay.NextAsync()).ShouldBeNull();
    }

    [Fact]
    public async Task a_node_serves_as_many_tails_at_once_as_configured_and_no_more()
    {
        var turns = new LiveTailTurns(Options.Create(new LiveTailOptions { AtOnce = 2 }));

        var first = (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldNotBeNull();
        (await turns.TakeAsync("org-b", CancellationToken.None)).ShouldNotBeNull();
        (await turns.TakeAsync("org-c", CancellationToken.None)).ShouldBeNull();

        first.Dispose();
        first.Dispose();
        (await turns.TakeAsync("org-c", CancellationToken.None)).ShouldNotBeNull();
        (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldBeNull();
    }

    [Fact]
    public async Task no_org_s_readers_take_every_tail_from_the_others()
    {
        var turns = new LiveTailTurns(Options.Create(new LiveTailOptions { AtOnce = 4, AtOncePerOrg = 2 }));

        var first = (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldNotBeNull();
        (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldNotBeNull();
        (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldBeNull();
        (await turns.TakeAsync("org-b", CancellationToken.None)).ShouldNotBeNull();

        first.Dispose();
        (await turns.TakeAsync("org-a", CancellationToken.None)).ShouldNotBeNull();
    }

    [Fact]
    public async Task a_tail_past_its_org_s_share_is_answered_busy_and_another_org_is_served()
    {
        var session = await _org.CreateSessionAsync();
        var turns = store.Host.Services.GetRequiredService<LiveTailTurns>();

        using (await HeldTurns.TakeAllAsync(turns.AtOncePerOrg, () => turns.TakeAsync(_org.Id, CancellationToken.None)))
        {
            var busy = await _org.SendAsync(HttpMethod.Get, $"{Live(session, "?from=0")}", _org.UserToken());
            busy.ShouldBeProblem(System.Net.HttpStatusCode.ServiceUnavailable, "busy");
            busy.Body.GetProperty("liveTailsAtOncePerOrg").GetInt32().ShouldBe(turns.AtOncePerOrg);
            using var other = await turns.TakeAsync("another-org", CancellationToken.None);
            other.ShouldNotBeNull();
        }
    }
}

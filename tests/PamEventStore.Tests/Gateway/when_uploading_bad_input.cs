using System.Text.Json;
using System.Net;
using System.Text;
using Marten;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

/// <summary>Bad input gets a clear problem, never a 500, and never changes what is stored.</summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_uploading_bad_input(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    /// <summary>A session holding one good batch at offset 0, and the number of events in its stream.</summary>
    private async Task<(Guid Session, int Events)> SessionWithOneBatch()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeAccepted(0);
        return (session, await EventCount(session));
    }

    private async Task<int> EventCount(Guid sessionId)
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await query.Events.FetchStreamAsync(sessionId)).Count;
    }

    [Theory]
    [InlineData("")]
    [InlineData("endOffset=500")]
    [InlineData("startOffset=")]
    [InlineData("startOffset=-1")]
    [InlineData("startOffset=abc")]
    [InlineData("startOffset=1.5")]
    [InlineData("startOffset=1e3")]
    [InlineData("startOffset=+7")]
    [InlineData("startOffset=99999999999999999999")]
    [InlineData("startOffset=100&startOffset=200")]
    [InlineData("startOffset=100&endOffset=100")]
    [InlineData("startOffset=100&endOffset=50")]
    [InlineData("startOffset=100&endOffset=x")]
    [InlineData("startOffset=2%00")]
    [InlineData("startOffset=2&endOffset=100%00%00")]
    [InlineData("startOffset=%002")]
    [InlineData("startOffset=2%20")]
    public async Task a_missing_or_malformed_offset_is_refused(string query)
    {
        var (session, events) = await SessionWithOneBatch();

        (await _org.UploadRawAsync(session, query, Encoding.UTF8.GetBytes(Lines(2, 1))))
            .ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await EventCount(session)).ShouldBe(events);
    }

    [Theory]
    [InlineData("", null, null)]
    [InlineData("[]", null, null)]
    [InlineData("{}", null, null)]
    [InlineData("[{]", null, null)]
    [InlineData("not json", null, null)]
    [InlineData("[] []", null, null)]
    [InlineData("[1]", 0, null)]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","input":"a","output":"b","extra":1}]""", 0, "extra")]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","input":"a"}]""", 0, "output")]
    [InlineData("""[{"timestamp":"yesterday","input":"a","output":"b"}]""", 0, "timestamp")]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","eventType":"input","data":"%%%","elapsedTime":1}]""", 0, "data")]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","eventType":"typing","data":"","elapsedTime":1}]""", 0, "eventType")]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","eventType":"input","data":"","elapsedTime":-1}]""", 0, "elapsedTime")]
    [InlineData("""[{"timestamp":"2026-12-04T10:00:00Z","eventType":"request","requestId":"r","headers":null,"url":"/"}]""", 0, "method")]
    public async Task an_invalid_recording_is_refused_naming_the_event_and_field(string body, int? index, string? field)
    {
        var (session, events) = await SessionWithOneBatch();

        var reply = await _org.UploadRawAsync(session, "startOffset=200", Encoding.UTF8.GetBytes(body));

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-recording");
        if (index is null) reply.Body.GetProperty("index").ValueKind.ShouldBe(JsonValueKind.Null);
        else reply.Body.GetProperty("index").GetInt32().ShouldBe(index.Value);
        if (field is null) reply.Body.GetProperty("field").ValueKind.ShouldBe(JsonValueKind.Null);
        else reply.Body.GetProperty("field").GetString().ShouldBe(field);
        (await EventCount(session)).ShouldBe(events);
    }

    [Fact]
    public async Task the_refusal_names_the_index_of_the_bad_event_in_a_long_batch()
    {
        var (session, _) = await SessionWithOneBatch();
        var events = Enumerable.Range(0, 10).Select(i => Terminal(i, "x")).ToList();
        events[7] = events[7].Replace("\"elapsedTime\":7.25", "\"elapsedTime\":\"7\"");

        var reply = await _org.UploadAsync(session, 200, Batch(events.ToArray()));

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-recording");
        reply.Body.GetProperty("index").GetInt32().ShouldBe(7);
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("event 7");
    }

    [Fact]
    public async Task a_body_over_the_limit_is_refused_with_the_limit()
    {
        var (session, events) = await SessionWithOneBatch();
        var huge = Batch(Enumerable.Range(0, 6000).Select(i => Terminal(i, new string('x', 200))).ToArray());
        Encoding.UTF8.GetByteCount(huge).ShouldBeGreaterThan(1024 * 1024);

        var reply = await _org.UploadAsync(session, 200, huge);

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBe(1024 * 1024);
        (await EventCount(session)).ShouldBe(events);
    }

    /// <summary>As Infisical's platform takes (its server's default body limit, 1 MiB): its gateway sends what a tick recorded, uncapped.</summary>
    [Fact]
    public async Task a_body_just_under_the_limit_is_accepted()
    {
        var session = await _org.CreateSessionAsync();
        var events = new List<string>();
        while (Encoding.UTF8.GetByteCount(Batch([.. events, Terminal(events.Count, new string('y', 300))])) < 1024 * 1024)
            events.Add(Terminal(events.Count, new string('y', 300)));

        (await _org.UploadAsync(session, 0, Batch(events.ToArray()))).ShouldBeAccepted(0);
    }

    [Fact]
    public async Task an_unsupported_content_type_is_refused()
    {
        var (session, events) = await SessionWithOneBatch();

        var reply = await _org.UploadRawAsync(session, "startOffset=200", Encoding.UTF8.GetBytes(Lines(2, 1)), contentType: "text/plain");

        reply.ShouldBeProblem(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        (await EventCount(session)).ShouldBe(events);
    }

    [Theory]
    [InlineData("event-batches?startOffset=200", "Content-Type", "application/json\u007f")]
    [InlineData("event-batches?startOffset=200", "Content-Type", "application/json; =")]
    [InlineData("event-batches?startOffset=200", "Content-Type", "application/json, text/plain")]
    [InlineData("event-batches?startOffset=200", "Content-Type", "application/jsonx")]
    [InlineData("event-batches?startOffset=200", "Content-Type", "application/json; charset=utf-16")]
    [InlineData("event-batches?startOffset=200", "Content-Encoding", "gzip")]
    [InlineData("event-batches?startOffset=200", "Content-Encoding", "br")]
    [InlineData("event-batches?startOffset=200", "Content-Encoding", "identity, gzip")]
    [InlineData("logs", "Content-Type", "application/json; charset=utf-16")]
    [InlineData("logs", "Content-Encoding", "deflate")]
    public async Task a_body_sent_as_something_it_would_not_be_read_as_is_refused_unread(string route, string header, string value)
    {
        var (session, events) = await SessionWithOneBatch();
        var body = route == "logs" ? $$"""{"logs":{{Lines(2, 1)}}}""" : Lines(2, 1);
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", header == "Content-Type" ? System.Text.RegularExpressions.Regex.Unescape(value) : "application/json").ShouldBeTrue();
        if (header == "Content-Encoding") content.Headers.TryAddWithoutValidation("Content-Encoding", value).ShouldBeTrue();

        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/{route}", _org.GatewayToken(), content);

        reply.ShouldBeProblem(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        (await EventCount(session)).ShouldBe(events);
    }

    [Theory]
    [InlineData("application/json; charset=UTF-8", null)]
    [InlineData("Application/JSON", null)]
    [InlineData("application/octet-stream", "identity")]
    public async Task a_body_sent_as_json_or_octets_in_utf_8_as_it_is_is_stored(string contentType, string? encoding)
    {
        var (session, _) = await SessionWithOneBatch();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(Lines(2, 1)));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType).ShouldBeTrue();
        if (encoding is not null) content.Headers.TryAddWithoutValidation("Content-Encoding", encoding).ShouldBeTrue();

        (await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/event-batches?startOffset=200", _org.GatewayToken(), content)).ShouldBeAccepted(1);
    }

    [Fact]
    public async Task an_unknown_session_is_a_session_problem_not_a_missing_route()
    {
        (await _org.UploadAsync(Guid.NewGuid(), 0, Lines(0, 1))).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.SendAsync(HttpMethod.Post, "/api/v1/pam/sessions/x/y/event-batch", _org.GatewayToken()))
            .ShouldBeProblem(HttpStatusCode.NotFound, "route-not-found");
    }

    [Fact]
    public async Task a_bad_upload_never_changes_what_the_session_reads_back()
    {
        var (session, _) = await SessionWithOneBatch();
        var before = (await _org.LogsAsync(session)).Body.GetRawText();

        await _org.UploadRawAsync(session, "startOffset=0", Encoding.UTF8.GetBytes("[{\"broken\":"));
        await _org.UploadRawAsync(session, "startOffset=0", Encoding.UTF8.GetBytes("[]"));
        await _org.UploadRawAsync(session, "startOffset=-5", Encoding.UTF8.GetBytes(Lines(0, 2)));

        (await _org.LogsAsync(session)).Body.GetRawText().ShouldBe(before);
    }

    [Fact]
    public async Task a_stranger_is_refused_before_its_body_is_read()
    {
        var (session, events) = await SessionWithOneBatch();
        var huge = Encoding.UTF8.GetBytes(Batch(Enumerable.Range(0, 3000).Select(i => Terminal(i, new string('x', 200))).ToArray()));

        // Over the size limit, yet refused for who sent it: the body was never read.
        (await _org.UploadRawAsync(session, "startOffset=200", huge, token: _org.GatewayToken("gw-2")))
            .ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
        (await _org.UploadRawAsync(Guid.NewGuid(), "startOffset=0", huge))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await store.NewOrg().UploadRawAsync(session, "startOffset=200", huge))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await EventCount(session)).ShouldBe(events);
    }
}

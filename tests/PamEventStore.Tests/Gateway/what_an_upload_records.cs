using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Marten;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

/// <summary>What an upload over HTTP leaves in the session's stream: who sent it, under which request id, and nothing when it is refused.</summary>
[Collection(PamStoreCollection.Name)]
public sealed class what_an_upload_records(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private string BatchUrl(Guid sessionId, long startOffset) => $"{Org.Sessions}/{sessionId}/event-batches?startOffset={startOffset}";

    /// <summary>Uploads a batch through the in-memory host, with the given Content-Type (none when null) and X-Request-Id (none when null).</summary>
    private async Task<Reply> Upload(Guid sessionId, long startOffset, string events, string? contentType = "application/octet-stream", string? requestId = null)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(events));
        content.Headers.ContentType = contentType is null ? null : MediaTypeHeaderValue.Parse(contentType);
        content.Headers.Contains("Content-Type").ShouldBe(contentType is not null);
        using var request = new HttpRequestMessage(HttpMethod.Post, BatchUrl(sessionId, startOffset)) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _org.GatewayToken());
        if (requestId is not null) request.Headers.TryAddWithoutValidation("X-Request-Id", requestId).ShouldBeTrue();
        using var client = store.Host.Server.CreateClient();
        return await Reply.From(await client.SendAsync(request));
    }

    private async Task<IReadOnlyList<BatchUploaded>> StoredBatches(Guid sessionId)
    {
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        return (await query.Events.FetchStreamAsync(sessionId)).Select(e => e.Data).OfType<BatchUploaded>().ToList();
    }

    private async Task<Actor> UploaderOfTheOnlyBatch(Guid sessionId) => (await StoredBatches(sessionId)).ShouldHaveSingleItem().UploadedBy;

    [Fact]
    public async Task a_stored_batch_names_the_gateway_that_sent_it_and_its_request_id()
    {
        var session = await _org.CreateSessionAsync();

        (await Upload(session, 0, Lines(0, 2), requestId: "req-7f3a-upload-0")).ShouldBeAccepted(sequence: 0);

        var actor = await UploaderOfTheOnlyBatch(session);
        actor.Type.ShouldBe("gateway");
        actor.GatewayId.ShouldBe(Org.Gateway);
        actor.Subject.ShouldBe(TokenClaims.ForGateway(_org.Id, Org.Gateway).Subject);
        actor.Subject.ShouldBe("gateway:" + Org.Gateway);
        actor.RequestId.ShouldBe("req-7f3a-upload-0");
    }

    [Fact]
    public async Task a_request_id_of_128_characters_is_taken_whole()
    {
        var session = await _org.CreateSessionAsync();
        var longest = new string('r', 127) + "9";

        (await Upload(session, 0, Lines(0, 1), requestId: longest)).ShouldBeAccepted(sequence: 0);

        (await UploaderOfTheOnlyBatch(session)).RequestId.ShouldBe(longest);
    }

    [Fact]
    public async Task without_a_request_id_the_batch_carries_the_requests_trace_id()
    {
        var first = await _org.CreateSessionAsync();
        var second = await _org.CreateSessionAsync();

        (await Upload(first, 0, Lines(0, 1))).ShouldBeAccepted(sequence: 0);
        (await Upload(second, 0, Lines(0, 1))).ShouldBeAccepted(sequence: 0);

        var firstId = (await UploaderOfTheOnlyBatch(first)).RequestId;
        var secondId = (await UploaderOfTheOnlyBatch(second)).RequestId;
        firstId.ShouldNotBeNullOrWhiteSpace();
        secondId.ShouldNotBeNullOrWhiteSpace();
        firstId.ShouldNotBe(secondId, "each request has its own trace id");
    }

    [Fact]
    public async Task a_refused_upload_is_recorded_under_the_trace_id_its_problem_answer_gives()
    {
        var session = await _org.CreateSessionAsync();
        (await Upload(session, 0, Lines(0, 2))).ShouldBeAccepted(sequence: 0);

        var refused = (await Upload(session, 0, Lines(5, 2))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");

        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        var conflict = (await query.Events.FetchStreamAsync(session)).Select(e => e.Data).OfType<BatchConflictRejected>().ShouldHaveSingleItem();
        refused.Body.GetProperty("traceId").GetString().ShouldNotBeNullOrWhiteSpace();
        conflict.RejectedFrom.RequestId.ShouldBe(refused.Body.GetProperty("traceId").GetString());
    }

    [Fact]
    public async Task a_request_id_longer_than_128_characters_is_not_taken()
    {
        var session = await _org.CreateSessionAsync();
        var tooLong = new string('r', 128) + "9";

        (await Upload(session, 0, Lines(0, 1), requestId: tooLong)).ShouldBeAccepted(sequence: 0);

        var requestId = (await UploaderOfTheOnlyBatch(session)).RequestId;
        requestId.ShouldNotBeNullOrWhiteSpace();
        requestId.ShouldNotBe(tooLong);
        requestId!.ShouldNotContain(new string('r', 128));
    }

    [Fact]
    public async Task a_batch_sent_with_no_content_type_at_all_is_accepted_and_stored()
    {
        var session = await _org.CreateSessionAsync();

        (await Upload(session, 0, Lines(0, 3), contentType: null)).ShouldBeAccepted(sequence: 0);

        (await StoredBatches(session)).ShouldHaveSingleItem().EventCount.ShouldBe(3);
        var view = await _org.SessionAsync(session);
        view.GetProperty("batchCount").GetInt64().ShouldBe(1);
        view.GetProperty("eventCount").GetInt64().ShouldBe(3);
    }

    [Fact]
    public async Task a_batch_sent_as_text_plain_is_refused_and_nothing_is_stored()
    {
        var session = await _org.CreateSessionAsync();

        var reply = await Upload(session, 0, Lines(0, 3), contentType: "text/plain");

        reply.ShouldBeProblem(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        (await StoredBatches(session)).ShouldBeEmpty();
        var view = await _org.SessionAsync(session);
        view.GetProperty("batchCount").GetInt64().ShouldBe(0);
        view.GetProperty("eventCount").GetInt64().ShouldBe(0);
        view.GetProperty("status").GetString().ShouldBe("starting");
    }

    [Fact]
    public async Task a_legacy_upload_over_its_limit_is_refused_with_the_limit_and_nothing_is_stored()
    {
        // The in-memory host keeps the default legacy limit (32 MiB); the service as its own process has 1 MiB.
        var limit = int.Parse(store.ProcessSettings["Uploads:MaxLegacyLogsBytes"]);
        var service = await store.ProcessAsync();
        var gateway = _org.GatewayToken();

        async Task<Reply> Send(HttpMethod method, string url, string token, HttpContent? content = null)
        {
            using var request = new HttpRequestMessage(method, url) { Content = content };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await Reply.From(await service.Client.SendAsync(request));
        }

        var created = await Send(HttpMethod.Post, Org.Sessions, _org.UserToken(),
            JsonContent.Create(new { projectId = "project-1", resourceType = "postgres", resourceName = "orders-db", accountName = "app", userId = "alice", gatewayId = Org.Gateway }));
        created.Status.ShouldBe(HttpStatusCode.Created, created.Body.ToString());
        var session = created.Body.GetProperty("session").GetProperty("id").GetGuid();
        var batch = new ByteArrayContent(Encoding.UTF8.GetBytes(Batch(Query(0, "select 0"), Query(1, "select 1"))));
        batch.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        (await Send(HttpMethod.Post, BatchUrl(session, 0), gateway, batch)).ShouldBeAccepted(sequence: 0);

        // A valid recording, over the endpoint's limit but under the server's own (limit + 1 MiB): only the endpoint refuses it.
        var logs = "{\"logs\":" + Batch(Enumerable.Range(0, 1300).Select(i => Query(i, $"select {i}", new string('o', 1000))).ToArray()) + "}";
        var size = Encoding.UTF8.GetByteCount(logs);
        size.ShouldBeGreaterThan(limit);
        size.ShouldBeLessThan(limit + 1024 * 1024);

        var reply = await Send(HttpMethod.Post, $"{Org.Sessions}/{session}/logs", gateway, new StringContent(logs, Encoding.UTF8, "application/json"));

        reply.ShouldBeProblem(HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        reply.Body.GetProperty("limit").GetInt64().ShouldBe(limit);
        var view = await _org.SessionAsync(session);
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        view.GetProperty("eventCount").GetInt64().ShouldBe(2);
        view.GetProperty("batchCount").GetInt64().ShouldBe(1);
        await using var query = store.Host.DocumentStore().QuerySession(_org.Id);
        (await query.Events.FetchStreamAsync(session)).ShouldNotContain(e => e.EventTypeName == "legacy_logs_uploaded");
    }
}

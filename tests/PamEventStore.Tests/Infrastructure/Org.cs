using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using PamEventStore.Security;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>An HTTP answer with its JSON body, if any.</summary>
public sealed record Reply(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)
{
    public string? ProblemType => Body.ValueKind == JsonValueKind.Object && Body.TryGetProperty("type", out var t) ? t.GetString() : null;

    public bool IsProblem(string slug) => ProblemType == "urn:pam-event-store:problem:" + slug;

    public static async Task<Reply> From(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return new Reply(response.StatusCode, body, response);
    }
}

/// <summary>A fresh organisation (tenant) with its gateway, its users and helpers to call the API as them.</summary>
public sealed class Org(PamStoreHost store, string id)
{
    public const string Gateway = "gw-1";
    public const string Sessions = "/api/v1/pam/sessions";

    public string Id => id;

    public PamStoreHost Store => store;

    public string GatewayToken(string gatewayId = Gateway) => TestKeys.Token(TokenClaims.ForGateway(id, gatewayId));

    /// <summary>A user token; by default one that may create and read sessions.</summary>
    public string UserToken(params string[] scopes) =>
        TestKeys.Token(TokenClaims.ForUser(id, "alice", scopes.Length == 0 ? [PamScopes.Create, PamScopes.Read] : scopes));

    public async Task<Reply> SendAsync(HttpMethod method, string url, string? token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, url) { Content = content };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var client = store.Host.Server.CreateClient();
        return await Reply.From(await client.SendAsync(request));
    }

    public async Task<Guid> CreateSessionAsync(string? gatewayId = Gateway, string resourceType = "ssh", string projectId = "project-1")
    {
        var reply = await CreateAsync(new { projectId, resourceType, resourceName = "web-1", accountName = "root", userId = "alice", gatewayId });
        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
        return reply.Body.GetProperty("session").GetProperty("id").GetGuid();
    }

    public Task<Reply> CreateAsync(object body, string? token = null) =>
        SendAsync(HttpMethod.Post, Sessions, token ?? UserToken(), JsonContent.Create(body));

    public Task<Reply> UploadAsync(Guid sessionId, long startOffset, string events, long? endOffset = null, string? token = null) =>
        UploadRawAsync(sessionId, $"startOffset={startOffset}" + (endOffset is null ? "" : $"&endOffset={endOffset}"), Encoding.UTF8.GetBytes(events), token);

    public Task<Reply> UploadRawAsync(Guid sessionId, string query, byte[] body, string? token = null, string contentType = "application/octet-stream")
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return SendAsync(HttpMethod.Post, $"{Sessions}/{sessionId}/event-batches?{query}", token ?? GatewayToken(), content);
    }

    public Task<Reply> UploadLegacyAsync(Guid sessionId, string events, string? token = null) =>
        SendAsync(HttpMethod.Post, $"{Sessions}/{sessionId}/logs", token ?? GatewayToken(),
            new StringContent($$"""{"logs":{{events}}}""", Encoding.UTF8, "application/json"));

    public Task<Reply> EndAsync(Guid sessionId, string? token = null) =>
        SendAsync(HttpMethod.Post, $"{Sessions}/{sessionId}/end", token ?? GatewayToken());

    public Task<Reply> LogsAsync(Guid sessionId, string query = "", string? token = null) =>
        SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}/logs{(query.Length > 0 ? "?" + query : "")}", token ?? UserToken());

    public async Task<JsonElement> SessionAsync(Guid sessionId)
    {
        var reply = await SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}", UserToken());
        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        return reply.Body.GetProperty("session");
    }
}

public static class ReplyAssertions
{
    public static Reply ShouldBeAccepted(this Reply reply, long sequence)
    {
        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        reply.Body.GetProperty("ok").GetBoolean().ShouldBeTrue();
        reply.Body.GetProperty("duplicate").GetBoolean().ShouldBeFalse();
        reply.Body.GetProperty("sequence").GetInt64().ShouldBe(sequence);
        return reply;
    }

    public static Reply ShouldBeDuplicate(this Reply reply)
    {
        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        reply.Body.GetProperty("ok").GetBoolean().ShouldBeTrue();
        reply.Body.GetProperty("duplicate").GetBoolean().ShouldBeTrue();
        return reply;
    }

    public static Reply ShouldBeProblem(this Reply reply, HttpStatusCode status, string slug)
    {
        reply.Status.ShouldBe(status, reply.Body.ToString());
        reply.Response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/problem+json");
        reply.ProblemType.ShouldBe("urn:pam-event-store:problem:" + slug, reply.Body.ToString());
        return reply;
    }
}

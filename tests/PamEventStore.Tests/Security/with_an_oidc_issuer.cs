using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Security;

/// <summary>
/// The production setting: tokens from an OIDC issuer (<c>Auth:Authority</c>), checked against the keys
/// it publishes. A real issuer on loopback (discovery document and JWKS over HTTP) and the service as its
/// own process, fetching them the way it does in production.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class with_an_oidc_issuer(PamStoreHost store) : IAsyncLifetime
{
    private const string KeyId = "issuer-key-1";
    private readonly RSA _issuerKey = RSA.Create(2048);
    private readonly string _org = $"org-{Guid.NewGuid():N}";
    private WebApplication _issuer = null!;
    private ServiceProcess _service = null!;
    private string _issuerUrl = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _issuer = builder.Build();
        _issuer.MapGet("/.well-known/openid-configuration", () => Results.Json(new
        {
            issuer = _issuerUrl,
            jwks_uri = $"{_issuerUrl}/keys",
            id_token_signing_alg_values_supported = new[] { "RS256" },
        }));
        _issuer.MapGet("/keys", () =>
        {
            var published = _issuerKey.ExportParameters(includePrivateParameters: false);
            return Results.Json(new
            {
                keys = new[]
                {
                    new { kty = "RSA", use = "sig", alg = "RS256", kid = KeyId, n = Base64UrlEncoder.Encode(published.Modulus), e = Base64UrlEncoder.Encode(published.Exponent) },
                },
            });
        });
        await _issuer.StartAsync();
        _issuerUrl = _issuer.Urls.Single();

        _service = await ServiceProcess.StartAsync(WithAuthority(_issuerUrl));
    }

    public async Task DisposeAsync()
    {
        await _service.DisposeAsync();
        await _issuer.DisposeAsync();
        _issuerKey.Dispose();
    }

    /// <summary>The test service's settings with the issuer in place of the shared signing key.</summary>
    private Dictionary<string, string> WithAuthority(string authority)
    {
        var settings = store.ProcessSettings;
        settings.Remove("Auth:SigningKey");
        settings["Auth:Authority"] = authority;
        settings["Auth:Issuer"] = authority;
        settings["Auth:RequireHttpsMetadata"] = "false";
        return settings;
    }

    private string Token(TokenClaims claims, RSA? key = null, string? issuer = null) => DevelopmentTokens.Issue(
        claims,
        new AuthOptions { Issuer = issuer ?? _issuerUrl },
        new SigningCredentials(new RsaSecurityKey(key ?? _issuerKey) { KeyId = KeyId }, SecurityAlgorithms.RsaSha256),
        TimeSpan.FromHours(1),
        DateTimeOffset.UtcNow.AddMinutes(-1));

    private TokenClaims Alice => TokenClaims.ForUser(_org, "alice", PamScopes.Create, PamScopes.Read);

    private static async Task<HttpResponseMessage> Send(ServiceProcess service, HttpMethod method, string url, string token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await service.Client.SendAsync(request);
    }

    private static JsonContent NewSession() =>
        JsonContent.Create(new { projectId = "p", resourceType = "ssh", resourceName = "web", accountName = "root", userId = "alice", gatewayId = "gw-1" });

    // One service process for these checks: starting one takes seconds.
    [Fact]
    public async Task only_tokens_signed_with_the_issuers_published_keys_are_accepted()
    {
        var created = await Send(_service, HttpMethod.Post, Org.Sessions, Token(Alice), NewSession());
        created.StatusCode.ShouldBe(HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var id = (await created.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("session").GetProperty("id").GetGuid();

        var gateway = Token(TokenClaims.ForGateway(_org, "gw-1"));
        var batch = JsonContent.Create(new[] { new { timestamp = "2026-01-01T00:00:00Z", input = "select 1", output = "1" } });
        (await Send(_service, HttpMethod.Post, $"{Org.Sessions}/{id}/event-batches?startOffset=0", gateway, batch)).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await Send(_service, HttpMethod.Get, $"{Org.Sessions}/{id}", Token(Alice))).StatusCode.ShouldBe(HttpStatusCode.OK);

        using var forger = RSA.Create(2048);
        (await Send(_service, HttpMethod.Get, $"{Org.Sessions}/{id}", Token(Alice, key: forger)))
            .StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "signed with another key under the issuer's key id");

        (await Send(_service, HttpMethod.Get, $"{Org.Sessions}/{id}", Token(Alice, issuer: "https://issuer.example")))
            .StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "naming another issuer");

        // Signed with the shared secret the test services otherwise trust, and naming this issuer.
        (await Send(_service, HttpMethod.Get, $"{Org.Sessions}/{id}", TestKeys.Token(Alice, auth: new AuthOptions { Issuer = _issuerUrl })))
            .StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "a shared-secret (HS256) token once an issuer is configured");
    }

    [Fact]
    public async Task an_unreachable_issuer_means_no_access_not_a_server_error()
    {
        // Nothing listens on the issuer's address: its keys cannot be fetched, so no token is valid.
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var deadIssuer = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        listener.Stop();

        await using var service = await ServiceProcess.StartAsync(WithAuthority(deadIssuer));
        var response = await Send(service, HttpMethod.Post, Org.Sessions, Token(Alice, issuer: deadIssuer), NewSession());

        response.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/problem+json");
    }
}

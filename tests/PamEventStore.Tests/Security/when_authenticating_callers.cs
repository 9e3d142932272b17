using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Security;

[Collection(PamStoreCollection.Name)]
public sealed class when_authenticating_callers(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    /// <summary>Every endpoint a token is checked on, one of each kind of caller and method.</summary>
    public static TheoryData<string> Endpoints => new() { "create", "upload", "legacy-logs", "read-session", "read-logs", "end", "upload-state" };

    private static readonly string OtherKey = Convert.ToBase64String(Enumerable.Range(200, 32).Select(i => (byte)i).ToArray());

    /// <summary>The claims a call to <paramref name="endpoint"/> needs: everything but the token is right.</summary>
    private TokenClaims RightClaims(string endpoint) => endpoint switch
    {
        "upload" or "legacy-logs" or "end" or "upload-state" => TokenClaims.ForGateway(_org.Id, Org.Gateway),
        _ => TokenClaims.ForUser(_org.Id, "alice", PamScopes.Create, PamScopes.Read),
    };

    /// <summary>Raw claims minted directly, so any of them can be left out.</summary>
    private Dictionary<string, object> RawClaims(string endpoint)
    {
        var claims = RightClaims(endpoint);
        var values = new Dictionary<string, object>
        {
            [PamClaims.Subject] = claims.Subject,
            [PamClaims.OrgId] = claims.OrgId,
            [PamClaims.ActorType] = claims.ActorType,
        };
        if (claims.GatewayId is not null) values[PamClaims.GatewayId] = claims.GatewayId;
        if (claims.Scopes is { Count: > 0 }) values[PamClaims.Scope] = string.Join(' ', claims.Scopes);
        return values;
    }

    private static string Mint(Dictionary<string, object> claims)
    {
        var now = DateTime.UtcNow.AddHours(-12);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = TestKeys.Auth.Issuer,
            Audience = TestKeys.Auth.Audience,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddDays(2),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(TestKeys.SigningKey)), SecurityAlgorithms.HmacSha256),
        });
    }

    /// <summary>Issuer, audience and a lifetime around now, for tokens built by hand.</summary>
    private static Dictionary<string, object> TimedClaims(Dictionary<string, object> claims)
    {
        var now = DateTimeOffset.UtcNow;
        claims["iss"] = TestKeys.Auth.Issuer;
        claims["aud"] = TestKeys.Auth.Audience;
        claims["nbf"] = now.AddHours(-12).ToUnixTimeSeconds();
        claims["iat"] = now.AddHours(-12).ToUnixTimeSeconds();
        claims["exp"] = now.AddDays(2).ToUnixTimeSeconds();
        return claims;
    }

    private static string Base64Url(string json) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(json));

    private Guid? _session;
    private readonly Guid _createdId = Guid.NewGuid();

    private async Task<Guid> Session() => _session ??= await _org.CreateSessionAsync();

    private async Task<Reply> Call(string endpoint, string? token)
    {
        var session = await Session();
        var url = $"{Org.Sessions}/{session}";
        return endpoint switch
        {
            "create" => await _org.SendAsync(HttpMethod.Post, Org.Sessions, token,
                JsonContent.Create(new { id = _createdId, projectId = "project-1", resourceType = "ssh", resourceName = "web-1", accountName = "root", userId = "alice", gatewayId = Org.Gateway })),
            "upload" => await _org.SendAsync(HttpMethod.Post, $"{url}/event-batches?startOffset=0", token, new ByteArrayContent(Encoding.UTF8.GetBytes(Lines(0, 2)))),
            "legacy-logs" => await _org.SendAsync(HttpMethod.Post, $"{url}/logs", token, new StringContent($$"""{"logs":{{Lines(0, 2)}}}""", Encoding.UTF8, "application/json")),
            "read-session" => await _org.SendAsync(HttpMethod.Get, url, token),
            "read-logs" => await _org.SendAsync(HttpMethod.Get, $"{url}/logs", token),
            "end" => await _org.SendAsync(HttpMethod.Post, $"{url}/end", token),
            "upload-state" => await _org.SendAsync(HttpMethod.Get, $"{url}/upload-state", token),
            _ => throw new ArgumentOutOfRangeException(nameof(endpoint), endpoint, null),
        };
    }

    /// <summary>The call is refused with 401, and nothing it would have written was.</summary>
    private async Task ShouldBeUnauthorized(string endpoint, string? token)
    {
        var reply = await Call(endpoint, token);

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        reply.Response.Headers.WwwAuthenticate.ShouldContain(h => h.Scheme == "Bearer", reply.Response.Headers.ToString());
        await NothingChanged();
    }

    private async Task NothingChanged()
    {
        var view = await _org.SessionAsync(await Session());
        view.GetProperty("status").GetString().ShouldBe("starting");
        view.GetProperty("batchCount").GetInt64().ShouldBe(0);
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{_createdId}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task the_right_token_is_let_in(string endpoint)
    {
        var reply = await Call(endpoint, TestKeys.Token(RightClaims(endpoint)));

        reply.Status.ShouldBeOneOf([HttpStatusCode.OK, HttpStatusCode.Created], reply.Body.ToString());
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task no_token_is_unauthorized_with_a_bearer_challenge(string endpoint)
    {
        var reply = await Call(endpoint, null);

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        reply.Response.Headers.WwwAuthenticate.ToString().ShouldStartWith("Bearer");
        await NothingChanged();
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_garbage_token_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, "not.a.token");

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_signed_with_another_key_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint), signingKey: OtherKey));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task an_expired_token_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint), lifetime: TimeSpan.FromHours(1), now: DateTimeOffset.UtcNow.AddDays(-3)));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_not_yet_valid_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint), now: DateTimeOffset.UtcNow.AddDays(3)));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_for_another_audience_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint), auth: new AuthOptions { Audience = "another-service" }));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_from_another_issuer_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint), auth: new AuthOptions { Issuer = "someone-else" }));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_without_org_id_is_unauthorized(string endpoint)
    {
        var claims = RawClaims(endpoint);
        claims.Remove(PamClaims.OrgId);
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_with_a_blank_org_id_is_unauthorized(string endpoint)
    {
        var claims = RawClaims(endpoint);
        claims[PamClaims.OrgId] = " ";
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    /// <summary>The org's own id, padded: the tenant would be the org's once trimmed, the caller's checks and keys another's.</summary>
    public static TheoryData<string, string> PaddedOrgIds => new()
    {
        { "upload", " {0}" }, { "legacy-logs", "{0} " }, { "read-session", "{0}\u00A0" }, { "read-logs", "\t{0}" },
        { "end", "{0}\n" }, { "upload-state", " {0}" }, { "create", "{0}\u0000" },
    };

    [Theory]
    [MemberData(nameof(PaddedOrgIds))]
    public async Task a_token_whose_org_id_is_padded_is_unauthorized(string endpoint, string padded)
    {
        var claims = RawClaims(endpoint);
        claims[PamClaims.OrgId] = string.Format(padded, _org.Id);
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_without_sub_is_unauthorized(string endpoint)
    {
        var claims = RawClaims(endpoint);
        claims.Remove(PamClaims.Subject);
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    /// <summary>Who acted is stored with what they did: a subject or gateway PostgreSQL cannot store, or a log line would split on, is no identity.</summary>
    public static TheoryData<string, string, string> ControlCharacterClaims => new()
    {
        { "create", PamClaims.Subject, "ali\u0000ce" }, { "upload", PamClaims.Subject, "gateway:\u0000gw-1" }, { "legacy-logs", PamClaims.Subject, "gateway:gw-1\n" },
        { "read-session", PamClaims.Subject, "ali\u0007ce" }, { "end", PamClaims.Subject, "gateway:gw-1\u0000" }, { "upload-state", PamClaims.GatewayId, Org.Gateway + "\u0000" },
        { "upload", PamClaims.GatewayId, Org.Gateway + "\r" },
    };

    [Theory]
    [MemberData(nameof(ControlCharacterClaims))]
    public async Task a_token_whose_subject_or_gateway_holds_a_control_character_is_unauthorized(string endpoint, string claim, string value)
    {
        var claims = RawClaims(endpoint);
        claims[claim] = value;
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_without_actor_type_is_unauthorized(string endpoint)
    {
        var claims = RawClaims(endpoint);
        claims.Remove(PamClaims.ActorType);
        await ShouldBeUnauthorized(endpoint, Mint(claims));
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_with_an_unknown_actor_type_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(RightClaims(endpoint) with { ActorType = "admin" }));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_gateway_token_without_gateway_id_is_unauthorized(string endpoint) =>
        await ShouldBeUnauthorized(endpoint, TestKeys.Token(new TokenClaims(_org.Id, "gateway:gw-1", "gateway", Scopes: [PamScopes.Create, PamScopes.Read])));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task an_unsigned_alg_none_token_is_unauthorized(string endpoint)
    {
        var claims = TimedClaims(RawClaims(endpoint));
        var token = Base64Url("""{"alg":"none","typ":"JWT"}""") + "." + Base64Url(System.Text.Json.JsonSerializer.Serialize(claims)) + ".";

        await ShouldBeUnauthorized(endpoint, token);
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task a_token_signed_with_the_right_key_but_another_algorithm_is_unauthorized(string endpoint)
    {
        // HS512 over the service's own key: only HS256 is accepted. Signed by hand, as the token
        // library refuses HS512 with a 256-bit key.
        var claims = TimedClaims(RawClaims(endpoint));
        var unsigned = Base64Url("""{"alg":"HS512","typ":"JWT"}""") + "." + Base64Url(System.Text.Json.JsonSerializer.Serialize(claims));
        var signature = System.Security.Cryptography.HMACSHA512.HashData(Convert.FromBase64String(TestKeys.SigningKey), Encoding.ASCII.GetBytes(unsigned));

        await ShouldBeUnauthorized(endpoint, unsigned + "." + Base64UrlEncoder.Encode(signature));
    }

    public static TheoryData<string, string> IdentityClaims => new()
    {
        { "read-session", PamClaims.OrgId }, { "read-session", PamClaims.Subject }, { "read-session", PamClaims.ActorType },
        { "upload", PamClaims.OrgId }, { "upload", PamClaims.GatewayId }, { "upload", PamClaims.ActorType },
    };

    [Theory]
    [MemberData(nameof(IdentityClaims))]
    public async Task an_identity_claim_given_as_a_list_is_unauthorized_even_when_its_first_value_is_right(string endpoint, string claim)
    {
        var claims = RawClaims(endpoint);
        claims[claim] = new[] { (string)claims[claim], "other" };

        var reply = await Call(endpoint, Mint(claims));

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        // The token library itself refuses a 'sub' that is not a string, before the service looks at it.
        reply.Body.GetProperty("detail").GetString()!.ShouldContain(claim == PamClaims.Subject ? "The bearer token was refused" : $"'{claim}' claim must be a single string");
        await NothingChanged();
    }

    [Fact]
    public async Task an_org_id_given_as_a_number_is_unauthorized()
    {
        var claims = RawClaims("read-session");
        claims[PamClaims.OrgId] = 5;

        await ShouldBeUnauthorized("read-session", Mint(claims));
    }

    [Theory]
    [InlineData("2026-12-04T10:00:00Z", "12345")]
    [InlineData("2026-12-04T10:00:00.0000000Z", "2026-12-04T10:00:00.0000000Z")] // typed as a date by the token library
    [InlineData("2026-12-04", "1")]
    public async Task identity_claims_that_read_like_dates_or_numbers_are_still_strings_and_let_in(string orgId, string subject)
    {
        var claims = new Dictionary<string, object>
        {
            [PamClaims.Subject] = subject, [PamClaims.OrgId] = orgId, [PamClaims.ActorType] = "user", [PamClaims.Scope] = PamScopes.Read,
        };

        var reply = await new Org(store, orgId).SendAsync(HttpMethod.Get, $"{Org.Sessions}/{Guid.NewGuid()}", Mint(claims));

        reply.ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task a_null_gateway_id_is_unauthorized()
    {
        var claims = RawClaims("read-session");
        claims[PamClaims.GatewayId] = null!;

        await ShouldBeUnauthorized("read-session", Mint(claims));
    }

    [Theory]
    [InlineData("""{"alg":"HS256","typ":"JWT","crit":["exp"]}""")]
    [InlineData("""{"alg":"HS256","typ":"JWT","b64":false,"crit":["b64"]}""")]
    public async Task a_token_whose_header_names_critical_extensions_is_unauthorized(string header)
    {
        var claims = TimedClaims(RawClaims("read-session"));
        var unsigned = Base64Url(header) + "." + Base64Url(System.Text.Json.JsonSerializer.Serialize(claims));
        var signature = System.Security.Cryptography.HMACSHA256.HashData(Convert.FromBase64String(TestKeys.SigningKey), Encoding.ASCII.GetBytes(unsigned));

        await ShouldBeUnauthorized("read-session", unsigned + "." + Base64UrlEncoder.Encode(signature));
    }

    [Fact]
    public async Task a_sanity_check_of_the_hand_built_tokens_a_correctly_signed_one_is_let_in()
    {
        var claims = TimedClaims(RawClaims("read-session"));
        var unsigned = Base64Url("""{"alg":"HS256","typ":"JWT"}""") + "." + Base64Url(System.Text.Json.JsonSerializer.Serialize(claims));
        var signature = System.Security.Cryptography.HMACSHA256.HashData(Convert.FromBase64String(TestKeys.SigningKey), Encoding.ASCII.GetBytes(unsigned));

        (await Call("read-session", unsigned + "." + Base64UrlEncoder.Encode(signature))).Status.ShouldBe(HttpStatusCode.OK);
        (await Call("read-session", Mint(RawClaims("read-session")))).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task the_refusal_of_a_token_without_org_id_says_what_is_missing()
    {
        var claims = RawClaims("read-session");
        claims.Remove(PamClaims.OrgId);

        var reply = await Call("read-session", Mint(claims));

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("org_id");
    }

    [Fact]
    public async Task the_refusal_of_an_expired_token_is_not_mistaken_for_a_missing_one()
    {
        var reply = await Call("read-session", TestKeys.Token(RightClaims("read-session"), lifetime: TimeSpan.FromHours(1), now: DateTimeOffset.UtcNow.AddDays(-3)));

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
        reply.Body.GetProperty("detail").GetString()!.ShouldStartWith("The bearer token was refused");
    }

    [Fact]
    public async Task a_scheme_other_than_bearer_is_unauthorized()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Org.Sessions}/{await Session()}");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", Convert.ToBase64String("alice:secret"u8.ToArray()));
        using var client = store.Host.Server.CreateClient();

        var reply = await Reply.From(await client.SendAsync(request));

        reply.ShouldBeProblem(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task health_needs_no_token()
    {
        var reply = await _org.SendAsync(HttpMethod.Get, "/health", null);

        reply.Status.ShouldBe(HttpStatusCode.OK);
        reply.Body.GetProperty("status").GetString().ShouldBe("ok");

        // As a load balancer asks (Kestrel leaves the body out of a HEAD answer; the in-memory server does not).
        using var head = await store.Host.Server.CreateClient().SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health"));
        head.StatusCode.ShouldBe(HttpStatusCode.OK);
    }
}

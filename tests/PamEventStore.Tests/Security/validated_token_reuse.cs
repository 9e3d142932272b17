using System.Security.Claims;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Security;

public sealed class validated_token_reuse
{
    private static readonly string OtherKey = Convert.ToBase64String(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray());

    private static TokenValidationParameters Parameters(string? signingKey = null) => new()
    {
        ValidIssuer = TestKeys.Auth.Issuer,
        ValidAudience = TestKeys.Auth.Audience,
        IssuerSigningKey = new SymmetricSecurityKey(Convert.FromBase64String(signingKey ?? TestKeys.SigningKey)),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        ClockSkew = TimeSpan.Zero,
    };

    [Fact]
    public async Task a_reused_validation_gives_each_request_its_own_identity()
    {
        using var handler = new CachingTokenHandler { MapInboundClaims = false };
        var token = TestKeys.Token(TokenClaims.ForGateway("org", "gw-1"));

        var first = await handler.ValidateTokenAsync(token, Parameters());
        var second = await handler.ValidateTokenAsync(token, Parameters());

        first.IsValid.ShouldBeTrue();
        second.IsValid.ShouldBeTrue();
        second.ClaimsIdentity.ShouldNotBeSameAs(first.ClaimsIdentity);
        second.ClaimsIdentity.FindFirst(PamClaims.GatewayId)!.Value.ShouldBe("gw-1");
        second.ClaimsIdentity.AddClaim(new Claim("added", "by one request"));
        (await handler.ValidateTokenAsync(token, Parameters())).ClaimsIdentity.HasClaim(c => c.Type == "added").ShouldBeFalse();
    }

    [Fact]
    public async Task a_validated_token_is_reused_without_its_signature_being_checked_again()
    {
        using var handler = new CachingTokenHandler { MapInboundClaims = false };
        var token = TestKeys.Token(TokenClaims.ForGateway("org", "gw-1"));
        (await handler.ValidateTokenAsync(token, Parameters(OtherKey))).IsValid.ShouldBeFalse();

        (await handler.ValidateTokenAsync(token, Parameters())).IsValid.ShouldBeTrue();

        // Checked again, the signature would fail under this key: the result is the one remembered.
        (await handler.ValidateTokenAsync(token, Parameters(OtherKey))).IsValid.ShouldBeTrue();
        (await new CachingTokenHandler { MapInboundClaims = false }.ValidateTokenAsync(token, Parameters(OtherKey))).IsValid.ShouldBeFalse();
    }

    [Fact]
    public async Task a_token_is_not_reused_past_its_expiry()
    {
        using var handler = new CachingTokenHandler { MapInboundClaims = false };
        var token = TestKeys.Token(TokenClaims.ForGateway("org", "gw-1"), lifetime: TimeSpan.FromSeconds(2), now: DateTimeOffset.UtcNow.AddSeconds(-1));
        (await handler.ValidateTokenAsync(token, Parameters())).IsValid.ShouldBeTrue();

        await Task.Delay(TimeSpan.FromSeconds(1.5));

        (await handler.ValidateTokenAsync(token, Parameters())).IsValid.ShouldBeFalse();
    }

    [Fact]
    public async Task an_invalid_token_is_never_remembered()
    {
        using var handler = new CachingTokenHandler { MapInboundClaims = false };
        var forged = TestKeys.Token(TokenClaims.ForGateway("org", "gw-1"), signingKey: Convert.ToBase64String(new byte[32]));

        (await handler.ValidateTokenAsync(forged, Parameters())).IsValid.ShouldBeFalse();
        (await handler.ValidateTokenAsync(forged, Parameters())).IsValid.ShouldBeFalse();
    }

    [Fact]
    public async Task a_refusal_is_not_remembered_either()
    {
        using var handler = new CachingTokenHandler { MapInboundClaims = false };
        var token = TestKeys.Token(TokenClaims.ForGateway("org", "gw-1"));

        (await handler.ValidateTokenAsync(token, Parameters(OtherKey))).IsValid.ShouldBeFalse();
        (await handler.ValidateTokenAsync(token, Parameters())).IsValid.ShouldBeTrue();
    }
}

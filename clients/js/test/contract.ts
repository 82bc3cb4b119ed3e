// The package's types against the server's contract. test/contract.test.mjs generates
// "otpgate-openapi" from a running otpgate's GET /openapi.json (openapi-typescript) and compiles
// this file with tsc: every `Assert<…>` below that is not `true` is a compile error, so a contract
// change that otpgate.d.ts (and so the client) misses fails the tests.
import type { components, paths } from "otpgate-openapi";
import type * as otpgate from "otpgate";

type Schemas = components["schemas"];

/**
 * A and B accept the same values and name the same properties: mutual assignability alone would
 * let an optional property added on one side pass, so the key sets are compared too.
 */
type Same<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [keyof A] extends [keyof B]
      ? [keyof B] extends [keyof A]
        ? true
        : false
      : false
    : false
  : false;
type Assert<T extends true> = T;

type JsonBody<Op> = Op extends { requestBody: { content: { "application/json": infer B } } } ? B : never;
type JsonAnswer<Op, Status extends number> = Op extends {
  responses: { [S in Status]: { content: { "application/json": infer R } } };
}
  ? R
  : never;
/** The operation answers `Status` with no body. */
type Empty<Op, Status extends number> = Op extends { responses: { [S in Status]: { content?: never } } } ? true : false;
type Result<M extends keyof otpgate.OtpgateClient> = otpgate.OtpgateClient[M] extends (...args: never[]) => Promise<infer R>
  ? R
  : never;

// The schemas, one by one (so a field added to a nested one is seen too).
export type Schemas_ = [
  Assert<Same<otpgate.ChannelName, Schemas["ChannelName"]>>,
  Assert<Same<otpgate.VerificationStatusName, Schemas["VerificationStatusName"]>>,
  Assert<Same<otpgate.CheckStatus, Schemas["CheckStatus"]>>,
  Assert<Same<otpgate.SendVerificationRequest, Schemas["SendVerificationRequest"]>>,
  Assert<Same<otpgate.VerificationResponse, Schemas["VerificationResponse"]>>,
  Assert<Same<otpgate.CheckVerificationRequest, Schemas["CheckVerificationRequest"]>>,
  Assert<Same<otpgate.UserView, Schemas["UserView"]>>,
  Assert<Same<otpgate.SessionView, Schemas["SessionView"]>>,
  Assert<Same<otpgate.CheckVerificationResponse, Schemas["CheckVerificationResponse"]>>,
  Assert<Same<otpgate.RefreshTokenRequest, Schemas["RefreshTokenRequest"]>>,
  Assert<Same<otpgate.RefreshResponse, Schemas["RefreshResponse"]>>,
  Assert<Same<otpgate.MeView, Schemas["MeView"]>>,
  Assert<Same<otpgate.ErrorCode, Schemas["ErrorCode"]>>,
  Assert<Same<otpgate.ErrorDetail, Schemas["ErrorDetail"]>>,
  Assert<Same<otpgate.ErrorBody, Schemas["ErrorBody"]>>,
  // The client's error codes include every code of the API's table.
  Assert<Schemas["ErrorCode"] extends otpgate.OtpgateErrorCode ? true : false>,
];

// The operations the client calls: path, method, body, answers, and the methods' results.
type Send = paths["/v1/verifications"]["post"];
type Check = paths["/v1/verifications/check"]["post"];
type Cancel = paths["/v1/verifications/{id}"]["delete"];
type Refresh = paths["/v1/sessions/refresh"]["post"];
type Revoke = paths["/v1/sessions/revoke"]["post"];
type Me = paths["/v1/me"]["get"];
type DeleteMe = paths["/v1/me"]["delete"];

/** How `send`'s options become the body's optional fields: every field needs an option. */
type SendOptionOf = { channel: "channel"; locale: "locale"; bot_token: "botToken" };

export type Operations = [
  Assert<Same<otpgate.SendVerificationRequest, JsonBody<Send>>>,
  Assert<Same<keyof SendOptionOf, Exclude<keyof JsonBody<Send>, "phone">>>,
  Assert<{ [F in keyof SendOptionOf]-?: NonNullable<JsonBody<Send>[F]> extends NonNullable<otpgate.SendOptions[SendOptionOf[F]]> ? true : false }[keyof SendOptionOf]>,
  Assert<"Idempotency-Key" extends keyof NonNullable<Send["parameters"]["header"]> ? true : false>,
  Assert<Same<Result<"send">, JsonAnswer<Send, 201>>>,
  Assert<Same<Result<"send">, JsonAnswer<Send, 200>>>,

  Assert<Same<otpgate.CheckVerificationRequest, JsonBody<Check>>>,
  Assert<Same<Result<"check">, JsonAnswer<Check, 200>>>,

  Assert<Empty<Cancel, 204>>,
  Assert<Same<Result<"cancel">, void>>,

  Assert<Same<otpgate.RefreshTokenRequest, JsonBody<Refresh>>>,
  Assert<Same<otpgate.RefreshResponse, JsonAnswer<Refresh, 200>>>,
  Assert<Same<Result<"refresh">, JsonAnswer<Refresh, 200>["session"]>>,

  Assert<Same<otpgate.RefreshTokenRequest, JsonBody<Revoke>>>,
  Assert<Empty<Revoke, 204>>,
  Assert<Same<Result<"revoke">, void>>,

  Assert<Same<Result<"me">, JsonAnswer<Me, 200>>>,
  Assert<Empty<DeleteMe, 204>>,
  Assert<Same<Result<"deleteMe">, void>>,

  // Errors come in the one envelope the client reads.
  Assert<Same<otpgate.ErrorBody, JsonAnswer<Send, 429>>>,
  Assert<Same<otpgate.ErrorBody, JsonAnswer<Check, 422>>>,
  Assert<Same<otpgate.ErrorBody, JsonAnswer<Refresh, 401>>>,
  Assert<Same<otpgate.ErrorBody, JsonAnswer<Me, 401>>>,
];

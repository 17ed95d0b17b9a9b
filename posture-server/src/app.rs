//! The router: `/v1` JSON API, `/ui` dashboard, security headers on every answer.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::domain::Server;
use crate::{ssf, v1, views};

/// The whole application.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/v1/health", get(v1::health))
        .route("/v1/challenge", get(v1::challenge))
        .route("/v1/evidence", post(v1::evidence))
        .route("/v1/enroll/tpm/begin", post(v1::tpm_begin))
        .route("/v1/enroll/tpm/finish", post(v1::tpm_finish))
        .route("/v1/enroll/software", post(v1::software_enroll))
        .route("/v1/attestation-ca/{file}", get(v1::attestation_ca))
        .route(
            "/v1/integrations/cloudflare/posture",
            post(v1::cloudflare_posture),
        )
        .route("/v1/devices", get(v1::devices))
        .route("/v1/devices/{id}", get(v1::device))
        .route("/v1/devices/{id}/decision", get(v1::decision))
        .route(
            "/v1/admin/enrollment-tokens",
            post(v1::create_enrollment_token).get(v1::enrollment_tokens),
        )
        .route("/v1/admin/api-tokens", post(v1::create_api_token))
        .route("/v1/admin/login-links", post(v1::create_login_link))
        .route("/v1/admin/devices/{id}/disable", post(v1::disable))
        .route("/v1/admin/devices/{id}/enable", post(v1::enable))
        .route("/v1/admin/devices/{id}", axum::routing::delete(v1::delete))
        .route(
            "/.well-known/ssf-configuration",
            get(ssf::http::configuration),
        )
        .route("/ssf/jwks", get(ssf::http::jwks))
        .route(
            "/ssf/streams",
            post(ssf::http::create_stream)
                .get(ssf::http::read_stream)
                .patch(ssf::http::update_stream)
                .put(ssf::http::replace_stream)
                .delete(ssf::http::delete_stream),
        )
        .route(
            "/ssf/status",
            get(ssf::http::read_status).post(ssf::http::update_status),
        )
        .route("/ssf/subjects/add", post(ssf::http::add_subject))
        .route("/ssf/subjects/remove", post(ssf::http::remove_subject))
        .route("/ssf/verify", post(ssf::http::verify))
        .route("/ssf/poll/{stream_id}", post(ssf::http::poll))
        .route("/ui", get(views::fleet))
        .route("/ui/style.css", get(views::style))
        .route("/ui/devices/{id}", get(views::device))
        .route("/ui/login", get(views::login_form).post(views::login))
        .route("/ui/login/{code}", get(views::login_link))
        .route("/ui/logout", post(views::logout))
        .fallback(v1::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(server)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

//! The tower `Service` every ecosystem's mirror is, written once.

/// Makes a mirror type a [`tower::Service`](tower_service::Service) for any request body.
///
/// The type must be `Clone` (cheaply: an `Arc` inside) and have an inherent
/// `async fn handle<B>(&self, request: http::Request<B>) -> http::Response<`[`Body`]`>`
/// that turns every failure into a response, so the service's error is
/// [`Infallible`](std::convert::Infallible) and it is always ready. Each call clones the
/// mirror into a boxed future, which is what axum's `nest_service` and `route_service`
/// take.
///
/// [`Body`]: crate::Body
#[macro_export]
macro_rules! impl_mirror_service {
    ($mirror:ty) => {
        impl<B> $crate::__private::Service<$crate::__private::http::Request<B>> for $mirror
        where
            B: $crate::__private::http_body::Body<Data = $crate::__private::Bytes>
                + ::std::marker::Send
                + 'static,
            B::Error: ::std::convert::Into<$crate::BoxError>,
        {
            type Response = $crate::__private::http::Response<$crate::Body>;
            type Error = ::std::convert::Infallible;
            type Future = ::std::pin::Pin<
                ::std::boxed::Box<
                    dyn ::std::future::Future<
                            Output = ::std::result::Result<Self::Response, Self::Error>,
                        > + ::std::marker::Send,
                >,
            >;

            fn poll_ready(
                &mut self,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), Self::Error>> {
                ::std::task::Poll::Ready(::std::result::Result::Ok(()))
            }

            fn call(&mut self, request: $crate::__private::http::Request<B>) -> Self::Future {
                let mirror = ::std::clone::Clone::clone(self);
                ::std::boxed::Box::pin(async move {
                    ::std::result::Result::Ok(mirror.handle(request).await)
                })
            }
        }
    };
}

/// What [`impl_mirror_service!`] names, so that its users need not depend on these crates.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use tower_service::Service;
    pub use {http, http_body};
}
